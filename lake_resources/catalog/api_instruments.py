"""The JSON data API's instrument catalogue: symbol -> API code, decimal factor, history starts, and (after
``lake instruments sync``) price scale, timezone, trading schedule and holidays.

Shipped as ``instruments_api.json`` (built from dukascopy-node 1.49's ``instrument-meta-data``, MIT:
``LICENSE-dukascopy-node.txt``). ``lake instruments sync`` writes the lake's own copy
(``LAKE_HOME/instruments_api.json``), read instead of the shipped file once it exists;
``LAKE_INSTRUMENTS_API`` names another file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from lake_resources.catalog.validation import validate_symbol

SHIPPED = "instruments_api.json"


@dataclass(frozen=True)
class ApiInstrument:
    symbol: str
    code: str
    decimal_factor: int
    history: dict[str, str | None] = field(default_factory=dict)  # period -> first data (ISO UTC)
    price_scale: int | None = None
    timezone: str | None = None
    schedule: list[dict[str, Any]] | None = None  # the API's tradeSchedule, as served
    holidays: list[tuple[int, int]] | None = None  # closed [from, till) in epoch ms
    group: str | None = None


def shipped_path() -> Path:
    return Path(str(resources.files("lake_resources.catalog").joinpath(SHIPPED)))


def lake_copy_path() -> Path:
    """Where ``lake instruments sync`` writes by default: the lake's own copy, beside its data."""
    return (Path(os.environ.get("LAKE_HOME") or ".lake").expanduser() / SHIPPED).resolve()


def catalogue_path() -> Path:
    """``LAKE_INSTRUMENTS_API`` if set, else the lake's synced copy if there is one, else the shipped file."""
    override = os.environ.get("LAKE_INSTRUMENTS_API")
    if override:
        return Path(override)
    synced = lake_copy_path()
    return synced if synced.is_file() else shipped_path()


def _load(path: str) -> dict[str, ApiInstrument]:
    raw = json.loads(Path(path).read_text())
    out = {}
    for symbol, meta in raw["instruments"].items():
        out[symbol] = ApiInstrument(
            symbol=symbol, code=meta["code"], decimal_factor=int(meta["decimal_factor"]),
            history=dict(meta.get("history") or {}), price_scale=meta.get("price_scale"),
            timezone=meta.get("timezone"), schedule=meta.get("schedule"),
            holidays=[(int(h[0]), int(h[1])) for h in meta["holidays"]] if meta.get("holidays") is not None else None,
            group=meta.get("group"),
        )
    return out


@cache
def _cached(path: str, mtime_ns: int) -> dict[str, ApiInstrument]:
    return _load(path)


def api_catalogue() -> dict[str, ApiInstrument]:
    path = catalogue_path()
    return _cached(str(path), path.stat().st_mtime_ns)  # a sync in this process is seen at once


class NoApiCodeError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def api_instrument(symbol: str) -> ApiInstrument:
    key = validate_symbol(symbol)
    try:
        return api_catalogue()[key]
    except KeyError:
        raise NoApiCodeError(
            f"{key} has no code in the API instrument catalogue ({catalogue_path()}): run `lake instruments sync`, "
            "or use the BI5 feed (LAKE_DUKASCOPY_FEED=datafeed)"
        ) from None


def api_code(symbol: str) -> str:
    return api_instrument(symbol).code

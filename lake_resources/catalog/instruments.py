"""The instrument catalogue shipped with the package.

Built from Dukascopy's ``instrument-meta-data.json`` (see ``LICENSE-dukascopy-node.txt``), plus a few
vendor-only equities that arrive through JSON pulls. Prices are integer points divided by
``decimal_factor``; an unknown symbol is an error, never a guessed factor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from lake_resources.catalog.validation import validate_symbol


class UnknownSymbolError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class Instrument:
    symbol: str
    name: str
    description: str
    decimal_factor: int
    history_start: datetime | None
    source: str  # "dukascopy" or "vendor"


@cache
def catalogue() -> dict[str, Instrument]:
    raw = json.loads(resources.files("lake_resources.catalog").joinpath("instruments.json").read_text())
    out: dict[str, Instrument] = {}
    for symbol, meta in raw["instruments"].items():
        start = meta.get("history_start")
        out[symbol] = Instrument(
            symbol=symbol,
            name=meta["name"],
            description=meta.get("description", ""),
            decimal_factor=int(meta["decimal_factor"]),
            history_start=datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None,
            source=meta.get("source", "dukascopy"),
        )
    return out


def instrument(symbol: str) -> Instrument:
    """Look a symbol up (case-insensitive); raise ``UnknownSymbolError`` if the catalogue lacks it."""
    key = validate_symbol(symbol)
    try:
        return catalogue()[key]
    except KeyError:
        raise UnknownSymbolError(
            f"unknown symbol {key!r}: not in the instrument catalogue (lake_resources/catalog/instruments.json)"
        ) from None


def decimal_factor(symbol: str) -> int:
    return instrument(symbol).decimal_factor



"""``lake instruments sync``: refresh the API instrument catalogue (``instruments_api.json``) from
``{base}/instruments`` and the detail endpoints ``{base}/instruments/{CODE}``.

Per instrument: code, decimal factor (10^priceScale), price scale, timezone, trading schedule,
holidays and history start per period. The list gives every instrument; details are fetched for the
symbols asked (default: the configured ``LAKE_SYMBOLS``), as each is one request. Entries the answer
does not mention are kept; the file is replaced atomically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lake_resources.sources.dukascopy import api_codec as codec
from lake_resources.storage import write_atomic

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")
_PERIODS = {"TICK": "tick", "MINUTE": "minute", "HOUR": "hour", "DAY": "day"}


class SyncError(RuntimeError):
    """The API answered something that is not an instrument list or detail; the message says what."""


def symbol_of(code: str) -> str:
    """The lake's symbol of an API code: ``EUR-USD`` -> ``EURUSD``, ``0005.HK-HKD`` -> ``0005HKHKD``."""
    return _NON_ALNUM.sub("", code).upper()


def _iso(ms: Any) -> str | None:
    if not isinstance(ms, (int, float)) or isinstance(ms, bool):
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _json(payload: bytes | None, what: str) -> Any:
    if payload is None:
        raise SyncError(f"{what}: not found")
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise SyncError(f"{what}: not valid JSON: {exc}") from None


def entry_from(meta: dict, previous: dict | None = None) -> dict:
    """One catalogue entry from an instrument object (list item or detail), over the previous entry."""
    out = dict(previous or {})
    code = meta.get("code")
    if not isinstance(code, str) or not code:
        raise SyncError(f"instrument without a code: {str(meta)[:200]}")
    try:
        codec.valid_code(code)
    except ValueError as exc:
        raise SyncError(str(exc)) from None
    out["code"] = code
    out["name"] = meta.get("name") or out.get("name") or code
    scale = meta.get("priceScale")
    if isinstance(scale, int) and not isinstance(scale, bool) and 0 <= scale <= 12:
        out["price_scale"] = scale
        out["decimal_factor"] = 10**scale
    if "decimal_factor" not in out:
        raise SyncError(f"{code}: no priceScale and no previous decimal factor")
    if isinstance(meta.get("defaultTimezone"), str):
        out["timezone"] = meta["defaultTimezone"]
    if isinstance(meta.get("tradeSchedule"), list):
        out["schedule"] = meta["tradeSchedule"]
    if isinstance(meta.get("holidays"), list):
        out["holidays"] = [[int(h["from"]), int(h["till"])] for h in meta["holidays"]
                           if isinstance(h, dict) and isinstance(h.get("from"), (int, float))
                           and isinstance(h.get("till"), (int, float))]
    if isinstance(meta.get("groupCode"), str):
        out["group"] = meta["groupCode"]
    if isinstance(meta.get("histories"), list):
        history = dict(out.get("history") or {})
        for h in meta["histories"]:
            period = _PERIODS.get(str(h.get("period", "")).upper()) if isinstance(h, dict) else None
            if period and _iso(h.get("from")):
                history[period] = _iso(h["from"])
        out["history"] = history
    return out


def sync(source, path: Path, *, detail_symbols: Iterable[str] | None = None) -> dict[str, int]:
    """Refresh the catalogue file at ``path`` through ``source`` (a :class:`DukascopyApiSource`).
    Returns counts: listed, details, added, updated."""
    path = Path(path)
    doc = json.loads(path.read_text()) if path.exists() else {"instruments": {}}
    catalogue: dict[str, dict] = doc.setdefault("instruments", {})
    listed = _json(source.fetch_raw("instruments"), f"{source.base}/instruments")
    if isinstance(listed, dict):
        listed = listed.get("instruments", listed.get("data"))
    if not isinstance(listed, list):
        raise SyncError(f"{source.base}/instruments: expected a list of instruments, got {type(listed).__name__}")
    counts = {"listed": 0, "details": 0, "added": 0, "updated": 0}
    for meta in listed:
        if not isinstance(meta, dict):
            raise SyncError(f"{source.base}/instruments: an entry is not an object: {str(meta)[:100]}")
        symbol = symbol_of(str(meta.get("code", "")))
        counts["added" if symbol not in catalogue else "updated"] += 1
        catalogue[symbol] = entry_from(meta, catalogue.get(symbol))
        counts["listed"] += 1
    wanted = [symbol_of(s) for s in detail_symbols] if detail_symbols is not None else []
    for symbol in wanted:
        if symbol not in catalogue:
            raise SyncError(f"{symbol}: not in {source.base}/instruments")
        code = catalogue[symbol]["code"]
        detail = _json(source.fetch_raw(f"instruments/{codec._code(code)}"), f"{source.base}/instruments/{code}")
        if not isinstance(detail, dict):
            raise SyncError(f"{source.base}/instruments/{code}: expected an object")
        catalogue[symbol] = entry_from(detail, catalogue[symbol])
        counts["details"] += 1
    doc["instruments"] = dict(sorted(catalogue.items()))
    doc["_synced"] = {"base": source.base, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_atomic(path, (json.dumps(doc, indent=0, sort_keys=True) + "\n").encode())
    return counts

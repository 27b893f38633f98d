"""The instrument catalogue shipped with the package.

Built from Dukascopy's ``instrument-meta-data.json`` (see ``LICENSE-dukascopy-node.txt``), plus a few
vendor-only equities that arrive through JSON pulls. Prices are integer points divided by
``decimal_factor``; an unknown symbol is an error, never a guessed factor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from lake_resources.validation import LakeValidationError, validate_symbol


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
    raw = json.loads(resources.files("lake_resources").joinpath("instruments.json").read_text())
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
            f"unknown symbol {key!r}: not in the instrument catalogue (lake_resources/instruments.json)"
        ) from None


def decimal_factor(symbol: str) -> int:
    return instrument(symbol).decimal_factor


def require_known_symbols(symbols: Iterable[str], configured: Collection[str],
                          stored: Callable[[str], bool] = lambda _symbol: False) -> list[str]:
    """The canonical ``symbols`` a user asked for, or ``LakeValidationError`` (one line) for the first
    that cannot give data, so a typo is never a silent empty result.

    A symbol is fine when it is in ``configured`` (``LAKE_SYMBOLS``) or has data in the lake (``stored``,
    asked only for the others: e.g. a vendor symbol a landing sensor discovered). Otherwise: a symbol the
    instrument catalogue lacks is unknown; a catalogue one is known but not ingested here, and the
    message says how to add it.
    """
    out = []
    for raw in symbols:
        symbol = validate_symbol(raw)
        if symbol not in configured and not stored(symbol):
            if symbol not in catalogue():
                raise LakeValidationError(
                    f"unknown symbol {symbol!r}: not in the instrument catalogue (lake_resources/instruments.json) "
                    "and no data for it in this lake")
            listed = ",".join([*configured, symbol])
            kind = "Dukascopy" if catalogue()[symbol].source == "dukascopy" else "vendor"
            raise LakeValidationError(
                f"symbol {symbol!r} (a {kind} instrument) is not in LAKE_SYMBOLS and has no data "
                f"in this lake: add it with LAKE_SYMBOLS={listed} and ingest it, e.g. "
                f"lake backfill --symbols {symbol} --start YYYY-MM-DD --end YYYY-MM-DD")
        out.append(symbol)
    return out

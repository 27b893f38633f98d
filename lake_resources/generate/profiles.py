"""What the sample data looks like: price levels and activity per instrument, equity and headline
profiles, the per-(seed, symbol, day) random streams, and ``GenerateSummary``."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from lake_resources.catalog.calendar import Market, market_of, market_sessions, session_hours
from lake_resources.catalog.instruments import Instrument, instrument
from lake_resources.catalog.validation import LakeValidationError

#: Calendar of the day-to-day price walk; generated days must fall inside it.
CALENDAR_START = date(2000, 1, 1)
CALENDAR_END = date(2050, 12, 31)
DEFAULT_VENDOR = "sample"
NEW_YORK = ZoneInfo("America/New_York")

_MS_PER_HOUR = 3_600_000
_MS_PER_DAY = 24 * _MS_PER_HOUR
_METAL_BASES = {"XAU", "XAG", "XPT", "XPD"}
# Centre of each known instrument's price (the walk reverts towards it over months).
_LEVELS = {
    "EURUSD": 1.10, "GBPUSD": 1.27, "USDJPY": 110.0, "AUDUSD": 0.70, "USDCHF": 0.92, "USDCAD": 1.32,
    "NZDUSD": 0.65, "EURJPY": 125.0, "GBPJPY": 145.0, "EURGBP": 0.86, "EURCHF": 1.05,
    "XAUUSD": 1650.0, "XAGUSD": 21.0, "BTCUSD": 30000.0, "ETHUSD": 2000.0, "LTCUSD": 90.0,
}
_FX_HOURS = (0.6,) * 7 + (1.2,) * 5 + (1.6,) * 5 + (0.9,) * 4 + (0.4,) * 3  # UTC 0-6 Asia ... 21-23 rollover
_CRYPTO_HOURS = (0.9,) * 13 + (1.2,) * 8 + (0.9,) * 3
_FX_SPREAD_BY_HOUR = (1.0,) * 21 + (2.5,) * 3  # spreads widen at the rollover


@dataclass(frozen=True)
class _TickProfile:
    level: float  # centre price
    daily_vol: float  # std of daily log returns
    swing: float  # long-run std of log price around the level
    spread_bps: float  # typical spread, basis points of price
    lot: float  # typical tick volume (Dukascopy units); most ticks quote round multiples of it
    volume_decimals: int
    market: Market  # whose calendar sessions the ticks follow
    hour_weights: tuple[float, ...]  # tick arrival weight per UTC hour
    spread_by_hour: tuple[float, ...]


@dataclass(frozen=True)
class _EquityProfile:
    level: float
    daily_vol: float
    swing: float
    daily_volume: float  # shares
    base_iv: float


_EQUITIES = {
    "AAPL": _EquityProfile(180.0, 0.016, 0.18, 55e6, 0.25),
    "MSFT": _EquityProfile(350.0, 0.015, 0.18, 25e6, 0.23),
    "SPY": _EquityProfile(450.0, 0.010, 0.12, 70e6, 0.14),
    "NVDA": _EquityProfile(450.0, 0.030, 0.30, 45e6, 0.45),
}
_HEADLINE_TEMPLATES = (
    ("{name} beats quarterly earnings estimates", 0.6),
    ("{name} misses revenue expectations", -0.6),
    ("{name} announces share buyback programme", 0.4),
    ("{name} faces regulatory probe over market practices", -0.5),
    ("Analyst upgrades {name} to buy", 0.5),
    ("Analyst downgrades {name} to hold", -0.3),
    ("{name} unveils new product line", 0.3),
    ("{name} shares move as sector rotates", 0.0),
    ("{name} names new chief financial officer", 0.0),
    ("Supply chain concerns weigh on {name}", -0.4),
)
_HEADLINE_SOURCES = ("Sample Newswire", "Market Desk", "Street Brief", "Wire Digest")


@dataclass
class GenerateSummary:
    out_dir: Path
    files_written: int = 0
    bytes_written: int = 0
    #: (symbol, day) -> ticks written, for Dukascopy symbols
    ticks: dict[tuple[str, date], int] = field(default_factory=dict)
    #: (feed, symbol, day) -> records in the pull, for vendor symbols
    vendor_records: dict[tuple[str, str, date], int] = field(default_factory=dict)

    @property
    def dukascopy_dir(self) -> Path:
        return self.out_dir / "dukascopy"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (keys ``SYMBOL|YYYY-MM-DD`` and ``feed|SYMBOL|YYYY-MM-DD``)."""
        return {
            "out_dir": str(self.out_dir),
            "files_written": self.files_written,
            "bytes_written": self.bytes_written,
            "ticks": {f"{s}|{d.isoformat()}": n for (s, d), n in self.ticks.items()},
            "vendor_records": {f"{f}|{s}|{d.isoformat()}": n for (f, s, d), n in self.vendor_records.items()},
        }

    def __str__(self) -> str:
        return (
            f"{self.files_written} files ({self.bytes_written / 1e6:.1f} MB) under {self.out_dir}: "
            f"{sum(self.ticks.values()):,} ticks over {len(self.ticks)} symbol-days, "
            f"{sum(self.vendor_records.values()):,} vendor records in {len(self.vendor_records)} pulls"
        )


# ------------------------------------------------------------------------------------------ helpers


def _symbol_key(symbol: str) -> int:
    return zlib.crc32(symbol.encode())  # stable across runs, unlike hash()


def _rng(seed: int, symbol: str, day: date, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, _symbol_key(symbol), day.toordinal(), stream])


def _check_day(day: date) -> None:
    if not CALENDAR_START <= day <= CALENDAR_END:
        raise LakeValidationError(f"day {day} outside the generator's calendar {CALENDAR_START}..{CALENDAR_END}")


@lru_cache(maxsize=128)
def _daily_log_levels(seed: int, symbol: str, level: float, daily_vol: float, swing: float) -> np.ndarray:
    """Log price at the start of each calendar day: a mean-reverting walk, clipped to +-2.5 swings."""
    n = (CALENDAR_END - CALENDAR_START).days + 2
    rng = np.random.default_rng([seed, _symbol_key(symbol)])
    shocks = rng.standard_normal(n) * daily_vol
    phi = 1.0 - daily_vol**2 / (2 * swing**2)  # AR(1) whose stationary std is `swing`
    dev = np.empty(n)
    dev[0] = rng.standard_normal() * swing
    for i in range(1, n):  # ~19k steps: milliseconds, once per (seed, symbol)
        dev[i] = phi * dev[i - 1] + shocks[i]
    return math.log(level) + np.clip(dev, -2.5 * swing, 2.5 * swing)


def _day_index(day: date) -> int:
    return (day - CALENDAR_START).days


def _tick_profile(inst: Instrument) -> _TickProfile:
    symbol, base = inst.symbol, inst.symbol[:3]
    level = _LEVELS.get(symbol, 100_000 / inst.decimal_factor)  # ~5-6 significant digits of points
    market = market_of(symbol)
    if market is Market.CRYPTO:
        return _TickProfile(level, 0.035, 0.25, 7.0, 0.1, 4, market, _CRYPTO_HOURS, (1.0,) * 24)
    if market in (Market.UNKNOWN, Market.SCHEDULE):  # index and stock CFDs: trade them on FX hours
        market = Market.FX
    if base in _METAL_BASES:
        return _TickProfile(level, 0.010, 0.08, 1.8, 0.01, 4, market, _FX_HOURS, _FX_SPREAD_BY_HOUR)
    return _TickProfile(level, 0.006, 0.06, 0.3, 1.0, 2, market, _FX_HOURS, _FX_SPREAD_BY_HOUR)


def _open_hours(day: date, market: Market) -> np.ndarray:
    """Which UTC hours of ``day`` trade, from the calendar's sessions of ``market``.

    The sessions of FX and crypto start and end on whole UTC hours (17:00 New York is 21:00 or 22:00
    UTC), so an open hour is open throughout and ticks may fall anywhere in it.
    """
    hours = np.zeros(24, dtype=bool)
    hours[session_hours(market_sessions(market, day), day)] = True
    return hours


def _dukascopy_instrument(symbol: str) -> Instrument:
    inst = instrument(symbol)
    if inst.source != "dukascopy":
        raise ValueError(f"{inst.symbol} is a {inst.source} symbol: it has no Dukascopy tick files")
    return inst

"""Realistic sample vendor data, deterministic given a seed.

- Dukascopy symbols (catalogue source "dukascopy"): hourly BI5 tick files in the exact datafeed layout
  under ``{out}/dukascopy/`` (``{SYMBOL}/{YYYY}/{MM zero-based}/{DD}/{HH}h_ticks.bi5``). Prices follow a
  random walk at the instrument's level (EURUSD ~1.1, USDJPY ~110, XAUUSD ~1300-2000, BTCUSD ~30000),
  mean-reverting over years so they stay there; spreads in basis points typical of the instrument
  class, wider at the 21-23h UTC rollover; tick arrival busiest in the London/New York overlap; integer
  points via the catalogue's decimal factor. Ticks fall only in the hours :mod:`lake_resources.calendar`
  says are open (one source of truth with the gap checks): FX and metals close from Friday 17:00 to
  Sunday 17:00 New York time (21:00 or 22:00 UTC with US daylight saving) and for the Christmas and New
  Year sessions; crypto trades every day; index and stock CFDs, for which the calendar has no rule, get
  FX hours. Closed hours are 0-byte files, or no files with ``closed_hours="absent"``. A few random open
  hours are empty (0-byte), as in the real feed.
- The same ticks in the JSON data API layout under ``{out}/dukascopy-api/`` (``ticks/{CODE}/{Y}/{M}/{D}/{H}``,
  :mod:`lake_resources.api_layout`; closed hours as the empty form), plus the vendor's own BID/ASK candles
  computed from them (minutes per day, hours per month, days per year, over the generated days), so the
  demo and tests run either feed (``layouts``).
- Vendor equities (catalogue source "vendor"): JSON pulls in the landing layout of
  :mod:`lake_resources.sources.vendor` under ``{out}/vendor/...``: minute bars of the US session
  (09:30-16:00 New York time) on weekdays, Black-Scholes option greeks every 30 minutes of the session,
  and a few headlines per day.

Every symbol-day draws from its own random stream seeded by (seed, symbol, day), and day-to-day price
levels come from one walk per (seed, symbol) over a fixed calendar, so a day's files do not depend on
which other days or symbols are generated. Everything is vectorised with numpy; LZMA compression is
the cost, spread over threads (it releases the GIL). ``lzma_preset=None`` compresses exactly as
``bi5.encode_ticks`` does (like Dukascopy's files); a low preset (0) is ~4x faster for benchmark-sized
data and decodes identically.
"""

from __future__ import annotations

import lzma
import math
import os
import zlib
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

from lake_resources import api_layout, bi5
from lake_resources import dukascopy_api as api_codec
from lake_resources.calendar import Market, market_of, market_sessions, session_hours
from lake_resources.instruments import Instrument, catalogue, instrument
from lake_resources.sources.vendor import make_pull, write_pull
from lake_resources.storage import write_atomic
from lake_resources.validation import LakeValidationError, parse_date, validate_symbol

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


# ------------------------------------------------------------------------------------------- ticks


def day_tick_records(
    symbol: str, day: date | str, ticks_per_day: int, seed: int = 0, *, empty_hour_probability: float = 0.01
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One symbol-day of ticks as BI5 records (integer points), in time order.

    Returns ``(records, counts, open_hours)``: ``counts[h]`` ticks belong to hour ``h`` (records are in
    hour order, ``ms`` relative to each hour) and ``open_hours[h]`` is False when the market is closed.
    ``ticks_per_day`` is the expected count of a full trading day.
    """
    inst = _dukascopy_instrument(symbol)
    day = parse_date(day)
    _check_day(day)
    if ticks_per_day < 0:
        raise ValueError(f"ticks_per_day must be >= 0, got {ticks_per_day}")
    profile = _tick_profile(inst)
    rng = _rng(seed, inst.symbol, day, 0)
    open_hours = _open_hours(day, profile.market)
    active = open_hours & (rng.random(24) >= empty_hour_probability)
    weights = np.asarray(profile.hour_weights)
    counts = np.where(active, rng.poisson(ticks_per_day * weights / weights.sum()), 0)
    n = int(counts.sum())
    recs = np.empty(n, dtype=bi5.TICK_RECORD)
    if n == 0:
        return recs, counts, open_hours
    hour_of_tick = np.repeat(np.arange(24), counts)
    # Sorting ms-of-day sorts within each hour; equal milliseconds are allowed, as in the real feed.
    day_ms = np.sort(hour_of_tick * _MS_PER_HOUR + rng.integers(0, _MS_PER_HOUR, n))
    t = (day_ms + 0.5) / _MS_PER_DAY

    # Brownian bridge in log price from this day's level to the next day's.
    levels = _daily_log_levels(seed, inst.symbol, profile.level, profile.daily_vol, profile.swing)
    x0, x1 = levels[_day_index(day)], levels[_day_index(day) + 1]
    walk = np.cumsum(rng.standard_normal(n) * np.sqrt(np.diff(t, prepend=0.0))) * profile.daily_vol
    walk_end = walk[-1] + rng.standard_normal() * math.sqrt(1.0 - t[-1]) * profile.daily_vol
    mid = np.exp(x0 + walk - t * (walk_end - (x1 - x0))) * inst.decimal_factor  # in points

    # Spreads and quoted sizes are sticky in real feeds (which is also what makes BI5 files compress):
    # a tick changes its spread with probability 0.3, and half the sizes are round lots.
    spread_mult = np.asarray(profile.spread_by_hour)[hour_of_tick]
    fresh = np.maximum(1.0, np.rint(mid * profile.spread_bps * 1e-4 * spread_mult * rng.lognormal(0, 0.35, n)))
    changes = rng.random(n) < 0.3
    changes[0] = True
    spread = fresh[np.maximum.accumulate(np.where(changes, np.arange(n), 0))]
    bid = np.maximum(1.0, np.rint(mid - spread / 2))
    round_lots = profile.lot * np.array([1.0, 1.0, 1.0, 1.5, 2.0, 1.25, 2.5, 3.0, 5.0])

    def volumes() -> np.ndarray:
        odd = np.maximum(profile.lot, profile.lot * rng.lognormal(0.5, 0.8, n))
        sizes = np.where(rng.random(n) < 0.5, round_lots[rng.integers(0, len(round_lots), n)], odd)
        return np.round(sizes, profile.volume_decimals).astype(np.float32)

    recs["ms"] = day_ms - hour_of_tick * _MS_PER_HOUR
    recs["bid"] = bid
    recs["ask"] = bid + spread
    recs["ask_volume"] = volumes()
    recs["bid_volume"] = volumes()
    return recs, counts, open_hours


def _encode_hour(recs: np.ndarray, lzma_preset: int | None) -> bytes:
    if lzma_preset is None:
        return bi5.encode_ticks(recs["ms"], recs["ask"], recs["bid"], recs["ask_volume"], recs["bid_volume"])
    return lzma.compress(recs.tobytes(), format=lzma.FORMAT_ALONE, preset=lzma_preset) if len(recs) else b""


def _split_hours(recs: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return np.split(recs, np.cumsum(counts)[:-1])


def generate_day_payloads(
    symbol: str,
    day: date | str,
    ticks_per_day: int = 100_000,
    seed: int = 0,
    *,
    empty_hour_probability: float = 0.01,
    lzma_preset: int | None = None,
    threads: int | None = None,
) -> list[bytes]:
    """One symbol-day in memory: the 24 hourly BI5 payloads (b"" = no ticks), as ``generate`` writes them."""
    recs, counts, _ = day_tick_records(symbol, day, ticks_per_day, seed, empty_hour_probability=empty_hour_probability)
    hours = _split_hours(recs, counts)
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda r: _encode_hour(r, lzma_preset), hours))


# ----------------------------------------------------------------------------------------- vendor


def _equity_profile(symbol: str) -> _EquityProfile:
    return _EQUITIES.get(symbol, _EquityProfile(100.0, 0.02, 0.2, 5e6, 0.30))


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _session_open_utc(day: date) -> datetime:
    return datetime.combine(day, time(9, 30), NEW_YORK).astimezone(timezone.utc)


def _minute_bars(symbol: str, day: date, seed: int) -> list[dict[str, Any]]:
    """390 one-minute bars of the US session (ts = bar open), Brownian bridge to the next day's level."""
    profile = _equity_profile(symbol)
    rng = _rng(seed, symbol, day, 1)
    levels = _daily_log_levels(seed, symbol, profile.level, profile.daily_vol, profile.swing)
    x0, x1 = levels[_day_index(day)], levels[_day_index(day) + 1]
    n = 390
    step = profile.daily_vol / math.sqrt(n)
    t = np.arange(1, n + 1) / n
    walk = np.cumsum(rng.standard_normal(n)) * step
    close = np.exp(x0 + walk - t * (walk[-1] - (x1 - x0)))
    open_ = np.concatenate([[math.exp(x0) * (1 + rng.normal(0, step))], close[:-1]])
    open_, close = np.round(open_, 2), np.round(close, 2)
    high = np.maximum(np.round(np.maximum(open_, close) * (1 + np.abs(rng.normal(0, step / 2, n))), 2), np.maximum(open_, close))
    low = np.minimum(np.round(np.minimum(open_, close) * (1 - np.abs(rng.normal(0, step / 2, n))), 2), np.minimum(open_, close))
    shape = 1 + 2 * ((np.arange(n) - n / 2) / (n / 2)) ** 2  # U-shaped intraday volume
    volume = np.maximum(100, np.rint(profile.daily_volume * shape / shape.sum() * rng.lognormal(0, 0.4, n))).astype(np.int64)
    trades = np.maximum(1, volume // rng.integers(80, 200, n))
    vwap = np.round((high + low + close) / 3, 4)
    start = _session_open_utc(day)
    return [
        {
            "ts": _iso(start + timedelta(minutes=i)),
            "open": float(open_[i]),
            "high": float(high[i]),
            "low": float(low[i]),
            "close": float(close[i]),
            "volume": int(volume[i]),
            "vwap": float(vwap[i]),
            "trades": int(trades[i]),
        }
        for i in range(n)
    ]


_erf = np.vectorize(math.erf, otypes=[float])


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _norm_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _option_greeks(symbol: str, day: date, seed: int, bars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Black-Scholes greeks (r = 4%, no dividends) every 30 minutes from 10:00 to 16:00 New York time,
    for 11 strikes around the open and the next 3 Friday expiries, calls and puts."""
    profile = _equity_profile(symbol)
    rng = _rng(seed, symbol, day, 2)
    rate = 0.04
    spot_open = bars[0]["open"]
    strike_step = 5.0 if spot_open > 200 else 2.5 if spot_open > 50 else 1.0
    strikes = np.round(spot_open / strike_step) * strike_step + strike_step * np.arange(-5, 6)
    strikes = strikes[strikes > 0]
    first_friday = day + timedelta(days=(4 - day.weekday()) % 7)
    expiries = [first_friday + timedelta(weeks=k) for k in range(3)]
    session_open = _session_open_utc(day)
    out: list[dict[str, Any]] = []
    for minute in range(30, 391, 30):
        ts = session_open + timedelta(minutes=minute)
        spot = bars[min(minute, 390) - 1]["close"]
        for expiry in expiries:
            expires_at = datetime.combine(expiry, time(16, 0), NEW_YORK)
            years = max((expires_at - ts).total_seconds() / (365 * 86_400), 1e-4)
            moneyness = np.log(strikes / spot)
            iv = profile.base_iv * (1 + 6 * moneyness**2) - 0.1 * moneyness + rng.normal(0, 0.002, len(strikes))
            sqrt_t = math.sqrt(years)
            d1 = (np.log(spot / strikes) + (rate + iv**2 / 2) * years) / (iv * sqrt_t)
            d2 = d1 - iv * sqrt_t
            disc = math.exp(-rate * years)
            pdf1 = _norm_pdf(d1)
            gamma = pdf1 / (spot * iv * sqrt_t)
            vega = spot * pdf1 * sqrt_t / 100  # per volatility point
            decay = -spot * pdf1 * iv / (2 * sqrt_t)
            open_interest = np.rint(rng.lognormal(7, 1.2, (2, len(strikes)))).astype(np.int64)
            for side, right in enumerate(("C", "P")):
                if right == "C":
                    delta = _norm_cdf(d1)
                    theta = (decay - rate * strikes * disc * _norm_cdf(d2)) / 365
                    rho = strikes * years * disc * _norm_cdf(d2) / 100
                    mark = spot * _norm_cdf(d1) - strikes * disc * _norm_cdf(d2)
                else:
                    delta = _norm_cdf(d1) - 1
                    theta = (decay + rate * strikes * disc * _norm_cdf(-d2)) / 365
                    rho = -strikes * years * disc * _norm_cdf(-d2) / 100
                    mark = strikes * disc * _norm_cdf(-d2) - spot * _norm_cdf(-d1)
                for j, strike in enumerate(strikes):
                    out.append(
                        {
                            "ts": _iso(ts),
                            "underlying": symbol,
                            "expiry": expiry.isoformat(),
                            "strike": float(strike),
                            "right": right,
                            "iv": round(float(iv[j]), 4),
                            "delta": round(float(delta[j]), 4),
                            "gamma": round(float(gamma[j]), 5),
                            "theta": round(float(theta[j]), 4),
                            "vega": round(float(vega[j]), 4),
                            "rho": round(float(rho[j]), 4),
                            "underlying_price": spot,
                            "mark": round(max(float(mark[j]), 0.01), 2),
                            "open_interest": int(open_interest[side, j]),
                            "option_symbol": f"{symbol}{expiry:%y%m%d}{right}{int(round(strike * 1000)):08d}",
                        }
                    )
    return out


def _headlines(symbol: str, day: date, seed: int, peers: list[str]) -> list[dict[str, Any]]:
    rng = _rng(seed, symbol, day, 3)
    count = int(rng.poisson(4 if day.weekday() < 5 else 1))
    seconds = np.sort(rng.integers(0, 86_400, count))
    day_start = datetime.combine(day, time(0), timezone.utc)
    name = instrument(symbol).description or symbol
    out = []
    for i, second in enumerate(seconds):
        template, tone = _HEADLINE_TEMPLATES[int(rng.integers(len(_HEADLINE_TEMPLATES)))]
        others = [p for p in peers if p != symbol]
        symbols = [symbol] + ([others[int(rng.integers(len(others)))]] if others and rng.random() < 0.25 else [])
        record: dict[str, Any] = {
            "ts": _iso(day_start + timedelta(seconds=int(second))),
            "symbols": symbols,
            "headline": template.format(name=name),
            "source": _HEADLINE_SOURCES[int(rng.integers(len(_HEADLINE_SOURCES)))],
            "id": f"{symbol}-{day:%Y%m%d}-{i:03d}",
            "url": f"https://news.example.com/{symbol.lower()}/{day:%Y%m%d}/{i:03d}",
        }
        if rng.random() < 0.8:  # vendors leave sentiment out when they have not scored a story
            record["sentiment"] = round(float(np.clip(tone + rng.normal(0, 0.2), -1, 1)), 2)
        out.append(record)
    return out


# --------------------------------------------------------------------------------------- generate


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def generate(
    out_dir: Path | str,
    symbols: Iterable[str],
    start: date | str,
    end: date | str,
    seed: int = 0,
    *,
    ticks_per_day: int = 20_000,
    vendor: str = DEFAULT_VENDOR,
    empty_hour_probability: float = 0.01,
    closed_hours: Literal["empty", "absent"] = "empty",
    lzma_preset: int | None = None,
    threads: int | None = None,
    layouts: tuple[str, ...] = ("datafeed", "api"),
) -> GenerateSummary:
    """Write sample data for ``symbols`` over the UTC days ``start``..``end`` (inclusive) under ``out_dir``.

    ``layouts``: the Dukascopy layouts written, ``datafeed`` (BI5 under ``dukascopy/``) and/or ``api``
    (JSON under ``dukascopy-api/``, with candles).

    Dukascopy symbols get ``{out}/dukascopy/`` BI5 files; vendor symbols get ``{out}/vendor/{vendor}/``
    pulls of bars and greeks (weekdays) and headlines (every day). Files are written atomically.
    """
    out = Path(out_dir)
    start, end = parse_date(start), parse_date(end)
    if end < start:
        raise LakeValidationError(f"end {end} is before start {start}")
    if ticks_per_day < 0:  # checked before any file is written
        raise LakeValidationError(f"ticks_per_day must be >= 0, got {ticks_per_day}")
    _check_day(start)
    _check_day(end)
    if closed_hours not in ("empty", "absent"):
        raise ValueError(f"closed_hours must be 'empty' or 'absent', got {closed_hours!r}")
    instruments = [instrument(s) for s in dict.fromkeys(validate_symbol(s) for s in symbols)]
    summary = GenerateSummary(out_dir=out)
    days = _days(start, end)

    unknown = [x for x in layouts if x not in ("datafeed", "api")]
    if unknown:
        raise ValueError(f"layouts must be 'datafeed' and/or 'api', got {unknown}")
    minutes: dict[str, dict[str, list[np.ndarray]]] = {}  # symbol -> side -> minute candles (sec since epoch)

    def write_day(symbol: str, day: date, encoded: list[Future[bytes]], open_hours: np.ndarray, ticks: int,
                  recs: np.ndarray, counts: np.ndarray) -> None:
        for hour, future in zip(bi5.day_hours(day), encoded, strict=True):
            payload = future.result()
            if not payload and not open_hours[hour.hour] and closed_hours == "absent":
                continue
            if "datafeed" in layouts:
                _write(out / "dukascopy" / bi5.hour_path(symbol, hour), payload, summary)
        if "api" in layouts:
            _write_api_day(out / "dukascopy-api", symbol, day, recs, counts, open_hours, closed_hours, summary, minutes)
        summary.ticks[(symbol, day)] = ticks

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        pending: tuple | None = None
        for inst in (i for i in instruments if i.source == "dukascopy"):
            for day in days:
                recs, counts, open_hours = day_tick_records(
                    inst.symbol, day, ticks_per_day, seed, empty_hour_probability=empty_hour_probability
                )
                encoded = [pool.submit(_encode_hour, hour, lzma_preset) if "datafeed" in layouts else _done(b"")
                           for hour in _split_hours(recs, counts)]
                if pending:  # write the previous day while this one compresses
                    write_day(*pending)
                pending = (inst.symbol, day, encoded, open_hours, len(recs), recs, counts)
        if pending:
            write_day(*pending)
    for symbol, sides in minutes.items():
        _write_api_rollups(out / "dukascopy-api", symbol, sides, summary)

    # Headlines may also tag other vendor equities of the catalogue (not just the generated ones, so a
    # day's pulls do not depend on which symbols are generated together).
    peers = sorted(s for s, i in catalogue().items() if i.source == "vendor")
    for symbol in (i.symbol for i in instruments if i.source == "vendor"):
        for day in days:
            pulls: list[tuple[str, datetime, list[dict[str, Any]]]] = []
            if day.weekday() < 5:
                bars = _minute_bars(symbol, day, seed)
                close_utc = _session_open_utc(day) + timedelta(minutes=390)
                pulls.append(("bars", close_utc + timedelta(minutes=2), bars))
                pulls.append(("greeks", close_utc + timedelta(minutes=5), _option_greeks(symbol, day, seed, bars)))
            next_midnight = datetime.combine(day + timedelta(days=1), time(0, 10), timezone.utc)
            pulls.append(("headlines", next_midnight, _headlines(symbol, day, seed, peers)))
            for feed, pulled_at, records in pulls:
                payload = make_pull(vendor, feed, symbol, day, pulled_at, records)
                write_pull(
                    out, payload, vendor=vendor, feed=feed, symbol=symbol, day=day, pull_id=f"{pulled_at:%Y%m%dT%H%M%SZ}"
                )
                summary.files_written += 1
                summary.bytes_written += len(payload)
                summary.vendor_records[(feed, symbol, day)] = len(records)
    return summary


def _done(value: bytes) -> Future[bytes]:
    future: Future[bytes] = Future()
    future.set_result(value)
    return future


def _api_code(symbol: str) -> str | None:
    from lake_resources.api_instruments import NoApiCodeError, api_code

    try:
        return api_code(symbol)
    except NoApiCodeError:
        return None  # not served by the API: BI5 only


def _write_api_day(root: Path, symbol: str, day: date, recs: np.ndarray, counts: np.ndarray, open_hours: np.ndarray,
                   closed_hours: str, summary: GenerateSummary, minutes: dict) -> None:
    """A day's hours and minute candles in the API layout; keeps the minutes for the hour/day candles."""
    code = _api_code(symbol)
    if code is None:
        return
    multiplier = api_codec.multiplier_for(instrument(symbol).decimal_factor)
    for hour, hour_recs in zip(bi5.day_hours(day), _split_hours(recs, counts), strict=True):
        if not len(hour_recs) and not open_hours[hour.hour] and closed_hours == "absent":
            continue
        _write(root / api_codec.ticks_path(code, hour), api_layout.ticks_json(hour_recs, hour, multiplier), summary)
    hour_of_tick = np.repeat(np.arange(24), counts)
    day_sec = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())
    for side in ("BID", "ASK"):
        candles = api_layout.minute_candles(recs, hour_of_tick, side.lower())
        _write(root / api_codec.candles_path("minute", code, side, day),
               api_layout.candles_json(candles, day, "minute", multiplier), summary)
        minutes.setdefault(symbol, {}).setdefault(side, []).append((day_sec, candles))


def _write_api_rollups(root: Path, symbol: str, sides: dict, summary: GenerateSummary) -> None:
    """Hour candles per month and day candles per year of the generated days, from their minute candles."""
    code = _api_code(symbol)
    if code is None:
        return
    multiplier = api_codec.multiplier_for(instrument(symbol).decimal_factor)
    for side, days in sides.items():
        by_month: dict[date, list[np.ndarray]] = {}
        by_year: dict[date, list[np.ndarray]] = {}
        for day_sec, candles in days:
            day = datetime.fromtimestamp(day_sec, tz=timezone.utc).date()
            month, year = date(day.year, day.month, 1), date(day.year, 1, 1)
            for start, bucket, into in ((month, 3600, by_month), (year, 86400, by_year)):
                shifted = candles.copy()
                shifted["sec"] = candles["sec"] + (day_sec - int(datetime(start.year, start.month, start.day,
                                                                          tzinfo=timezone.utc).timestamp()))
                into.setdefault(start, []).append(api_layout.rollup_candles(shifted, 0, bucket))
        for kind, groups in (("hour", by_month), ("day", by_year)):
            for start, parts in groups.items():
                merged = np.concatenate(parts)
                _write(root / api_codec.candles_path(kind, code, side, start),
                       api_layout.candles_json(merged, start, kind, multiplier), summary)


def _write(path: Path, payload: bytes, summary: GenerateSummary) -> None:
    write_atomic(path, payload)
    summary.files_written += 1
    summary.bytes_written += len(payload)

"""Generated Dukascopy tick records of one symbol-day, and their BI5 hour files."""

from __future__ import annotations

import lzma
import math
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import numpy as np

from lake_resources.catalog.validation import parse_date
from lake_resources.generate.profiles import (
    _MS_PER_DAY,
    _MS_PER_HOUR,
    _check_day,
    _daily_log_levels,
    _day_index,
    _dukascopy_instrument,
    _open_hours,
    _rng,
    _tick_profile,
)
from lake_resources.sources.dukascopy import bi5

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

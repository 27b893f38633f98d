"""Write data in the JSON data API's layout (``ticks/{CODE}/{Y}/{M}/{D}/{H}``, ``candles/...``): the
generator's second output, and BI5 files (a mirror, the fixtures) re-encoded for tests of the API feed.

Ticks are kept exactly: same millisecond offsets and integer points; volumes in units (BI5's float32
millions x 1e6). Candles are BI5 candles or candles computed from ticks (OHLC on points per minute, volume
the sum of tick volumes in millions, as Dukascopy's); a minute without ticks has no candle.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

from lake_resources.sources.dukascopy import api_codec as codec
from lake_resources.sources.dukascopy import bi5
from lake_resources.storage import write_atomic

_MS_PER_MINUTE = 60_000


def _ms(moment: datetime | date) -> int:
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def ticks_json(recs: np.ndarray, hour_start: datetime, multiplier: float) -> bytes:
    """An hour of BI5 tick records (``bi5.TICK_RECORD``) as the API's JSON response."""
    return codec.encode_ticks(
        _ms(hour_start), multiplier, recs["ms"], recs["ask"], recs["bid"],
        recs["ask_volume"].astype(np.float64) * 1e6, recs["bid_volume"].astype(np.float64) * 1e6,
    )


def bi5_hour_json(payload: bytes, hour_start: datetime, multiplier: float) -> bytes:
    return ticks_json(bi5.tick_points(payload), hour_start, multiplier)


def candles_json(recs: np.ndarray, period_start: date, kind: str, multiplier: float) -> bytes:
    """BI5 candle records (``bi5.CANDLE_RECORD``, seconds from the period start) as the API's response."""
    shift = codec.CANDLE_KINDS[kind]
    steps = recs["sec"].astype(np.int64) * 1000 // shift
    return codec.encode_candles(_ms(period_start), shift, multiplier, steps, recs["open"], recs["high"],
                                recs["low"], recs["close"], recs["volume"].astype(np.float64))


def minute_candles(day_recs: np.ndarray, hour_of_tick: np.ndarray, side: str) -> np.ndarray:
    """Minute candles (``bi5.CANDLE_RECORD``, seconds from midnight) of a day's tick records, for ``side``
    (bid/ask): minutes with ticks only."""
    if not len(day_recs):
        return np.empty(0, dtype=bi5.CANDLE_RECORD)
    minute = (hour_of_tick.astype(np.int64) * 3_600_000 + day_recs["ms"].astype(np.int64)) // _MS_PER_MINUTE
    starts = np.flatnonzero(np.diff(minute, prepend=-1))
    price = day_recs[side].astype(np.int64)
    volume = day_recs[f"{side}_volume"].astype(np.float64)
    out = np.empty(len(starts), dtype=bi5.CANDLE_RECORD)
    out["sec"] = minute[starts] * 60
    out["open"] = price[starts]
    out["close"] = price[np.append(starts[1:], len(price)) - 1]
    out["high"] = np.maximum.reduceat(price, starts)
    out["low"] = np.minimum.reduceat(price, starts)
    out["volume"] = np.add.reduceat(volume, starts)
    return out


def rollup_candles(recs: np.ndarray, period_start_sec: int, bucket_sec: int) -> np.ndarray:
    """Candles of ``bucket_sec`` from finer candle records whose ``sec`` counts from ``period_start_sec``."""
    if not len(recs):
        return np.empty(0, dtype=bi5.CANDLE_RECORD)
    absolute = recs["sec"].astype(np.int64) + period_start_sec
    bucket = absolute // bucket_sec
    starts = np.flatnonzero(np.diff(bucket, prepend=-1))
    out = np.empty(len(starts), dtype=bi5.CANDLE_RECORD)
    out["sec"] = bucket[starts] * bucket_sec
    out["open"] = recs["open"][starts]
    out["close"] = recs["close"][np.append(starts[1:], len(recs)) - 1]
    out["high"] = np.maximum.reduceat(recs["high"].astype(np.int64), starts)
    out["low"] = np.minimum.reduceat(recs["low"].astype(np.int64), starts)
    out["volume"] = np.add.reduceat(recs["volume"].astype(np.float64), starts)
    return out


def write(root: Path, rel: str, payload: bytes) -> Path:
    path = Path(root) / rel
    write_atomic(path, payload)
    return path


def mirror_bi5_day(datafeed_root: Path, api_root: Path, symbol: str, code: str, day: date, decimal_factor: int) -> int:
    """Re-encode a BI5 mirror's day of ``symbol`` (24 hour files and, where present, the BID/ASK minute,
    hour and day candle files) into the API layout under ``api_root``; returns the files written."""
    multiplier = codec.multiplier_for(decimal_factor)
    written = 0
    for hour in bi5.day_hours(day):
        src = Path(datafeed_root) / bi5.hour_path(symbol, hour)
        if src.exists():
            write(api_root, codec.ticks_path(code, hour), bi5_hour_json(src.read_bytes(), hour, multiplier))
            written += 1
    month_dir = Path(datafeed_root) / symbol / f"{day.year:04d}" / f"{day.month - 1:02d}"
    files = {
        "minute": (month_dir / f"{day.day:02d}", "candles_min_1", day),
        "hour": (month_dir, "candles_hour_1", date(day.year, day.month, 1)),
        "day": (month_dir.parent, "candles_day_1", date(day.year, 1, 1)),
    }
    for kind, (folder, stem, start) in files.items():
        for side in codec.SIDES:
            src = folder / f"{side}_{stem}.bi5"
            if src.exists():
                recs = bi5.records(bi5.decompress(src.read_bytes(), name=str(src)), bi5.CANDLE_RECORD, name=str(src))
                write(api_root, codec.candles_path(kind, code, side, start), candles_json(recs, start, kind, multiplier))
                written += 1
    return written

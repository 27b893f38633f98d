"""Dukascopy BI5 codec: LZMA ("alone" format) files of fixed-size big-endian records.

Ticks: 20 bytes = uint32 ms since the hour, uint32 ask, uint32 bid, float32 ask volume,
float32 bid volume. Candles: 24 bytes = uint32 seconds since the period start, uint32 open,
close, low, high (that order), float32 volume. Prices are integer points / decimal factor.

Decoding is vectorised (numpy structured dtype over the decompressed buffer); LZMA dominates the
cost, and it releases the GIL, so a day's 24 hours decompress in a thread pool.
"""

from __future__ import annotations

import lzma
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl

TICK_RECORD = np.dtype(
    [("ms", ">u4"), ("ask", ">u4"), ("bid", ">u4"), ("ask_volume", ">f4"), ("bid_volume", ">f4")]
)
CANDLE_RECORD = np.dtype(
    [("sec", ">u4"), ("open", ">u4"), ("close", ">u4"), ("low", ">u4"), ("high", ">u4"), ("volume", ">f4")]
)
TS_DTYPE = pl.Datetime("ns", "UTC")
MS_PER_HOUR = 3_600_000
_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000


class Bi5Error(ValueError):
    """A BI5 payload could not be decoded; the message names the file and what is wrong."""


def _epoch_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1_000


def decompress(payload: bytes, *, name: str = "<bytes>") -> bytes:
    """LZMA-decompress one file; a 0-byte file is an empty period (returns b"")."""
    if not payload:
        return b""
    try:
        return lzma.decompress(payload)
    except lzma.LZMAError as exc:
        raise Bi5Error(f"{name}: corrupt or truncated LZMA stream ({exc})") from None
    except EOFError:
        raise Bi5Error(f"{name}: truncated LZMA stream (ended before the end marker)") from None


def records(raw: bytes, dtype: np.dtype, *, name: str = "<bytes>") -> np.ndarray:
    """View a decompressed payload as structured records, refusing a ragged tail."""
    if len(raw) % dtype.itemsize:
        raise Bi5Error(
            f"{name}: payload of {len(raw)} bytes is not a multiple of the {dtype.itemsize}-byte record"
        )
    return np.frombuffer(raw, dtype=dtype)


def tick_points(payload: bytes, *, name: str = "<bytes>") -> np.ndarray:
    """Decompress and view a tick file as raw integer-point records (no normalisation)."""
    return records(decompress(payload, name=name), TICK_RECORD, name=name)


def beyond_hour_records(recs: np.ndarray) -> np.ndarray:
    """Indices of tick records whose ms offset is >= one hour (a corrupt or misfiled record).

    One reduction over the (big-endian, strided) ``ms`` field settles the normal case without
    allocating a mask; only a file that has such records pays for the comparison that finds them.
    """
    if recs.size == 0:
        return np.empty(0, dtype=np.intp)
    ms = recs["ms"]
    if int(ms.max()) < MS_PER_HOUR:
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(ms >= MS_PER_HOUR)


def ticks_frame(recs: np.ndarray, hour_start_ns: np.ndarray | int, decimal_factor: int) -> pl.DataFrame:
    """Normalise tick records: absolute UTC ns timestamps, prices = points / decimal factor.

    ``hour_start_ns`` is a scalar, or one value per record when several hours are concatenated.
    """
    factor = float(decimal_factor)
    ts = recs["ms"].astype(np.int64) * _NS_PER_MS + hour_start_ns
    return pl.DataFrame(
        {
            "ts": pl.Series("ts", ts).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
            "bid": recs["bid"].astype(np.float64) / factor,
            "ask": recs["ask"].astype(np.float64) / factor,
            "bid_volume": recs["bid_volume"].astype(np.float32),
            "ask_volume": recs["ask_volume"].astype(np.float32),
        }
    )


def decode_ticks(payload: bytes, hour_start: datetime, decimal_factor: int, *, name: str = "<bytes>") -> pl.DataFrame:
    """Decode one hourly tick file into ``ts, bid, ask, bid_volume, ask_volume``."""
    return ticks_frame(tick_points(payload, name=name), _epoch_ns(hour_start), decimal_factor)


def decode_day_ticks(
    hours: Sequence[bytes | None],
    day: date,
    decimal_factor: int,
    *,
    names: Sequence[str] | None = None,
    threads: int = 2,
) -> pl.DataFrame:
    """Decode a day's 24 hourly payloads (``None`` or b"" = no ticks) into one frame in time order.

    Raises ``Bi5Error`` naming the first bad hour; :func:`decode_day_ticks_checked` reports bad hours
    instead and decodes the rest.
    """
    frame, problems = decode_day_ticks_checked(hours, day, decimal_factor, names=names, threads=threads)
    if problems:
        raise Bi5Error(problems[0].message)
    return frame


@dataclass(frozen=True)
class HourProblem:
    hour: int
    name: str
    message: str
    rejected_records: int | None  # None: the whole file was unreadable


def decode_day_ticks_checked(
    hours: Sequence[bytes | None],
    day: date,
    decimal_factor: int,
    *,
    names: Sequence[str] | None = None,
    threads: int = 2,
) -> tuple[pl.DataFrame, list[HourProblem]]:
    """Decode a day's 24 hourly payloads, setting aside what cannot be trusted.

    An hour whose file is corrupt, truncated or ragged is skipped whole; records whose offset lies
    beyond the hour (ms >= 3,600,000) are dropped. Each is reported as a :class:`HourProblem`.
    LZMA releases the GIL, so hours decompress in ``threads`` threads.
    """
    if len(hours) != 24:
        raise ValueError(f"expected 24 hourly payloads, got {len(hours)}")
    names = list(names) if names is not None else [f"{day.isoformat()} {h:02d}h_ticks.bi5" for h in range(24)]
    work = [(h, p) for h, p in enumerate(hours) if p]
    problems: list[HourProblem] = []

    def one(item: tuple[int, bytes]) -> np.ndarray | None:
        h, payload = item
        try:
            return records(decompress(payload, name=names[h]), TICK_RECORD, name=names[h])
        except Bi5Error as exc:
            problems.append(HourProblem(h, names[h], str(exc), None))
            return None

    if threads > 1 and len(work) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            decoded = list(pool.map(one, work))
    else:
        decoded = [one(item) for item in work]
    day_ns = _epoch_ns(datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
    parts, starts = [], []
    for (h, _), recs in zip(work, decoded):
        if recs is None:
            continue
        beyond = beyond_hour_records(recs)
        if beyond.size:
            problems.append(HourProblem(
                h, names[h], f"{names[h]}: {beyond.size} record(s) with a timestamp beyond the hour (ms >= {MS_PER_HOUR})", beyond.size
            ))
            recs = np.delete(recs, beyond)
        parts.append(recs)
        starts.append(day_ns + h * 3600 * _NS_PER_S)
    problems.sort(key=lambda p: p.hour)
    if not parts:
        return ticks_frame(np.empty(0, dtype=TICK_RECORD), day_ns, decimal_factor), problems
    offsets = np.repeat(np.array(starts, dtype=np.int64), [len(p) for p in parts])
    return ticks_frame(np.concatenate(parts), offsets, decimal_factor), problems


def decode_candles(
    payload: bytes, period_start: datetime, decimal_factor: int, *, name: str = "<bytes>"
) -> pl.DataFrame:
    """Decode a candle file into ``ts, open, high, low, close, volume`` (ts = candle open, UTC)."""
    recs = records(decompress(payload, name=name), CANDLE_RECORD, name=name)
    factor = float(decimal_factor)
    ts = recs["sec"].astype(np.int64) * _NS_PER_S + _epoch_ns(period_start)
    return pl.DataFrame(
        {
            "ts": pl.Series("ts", ts).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
            "open": recs["open"].astype(np.float64) / factor,
            "high": recs["high"].astype(np.float64) / factor,
            "low": recs["low"].astype(np.float64) / factor,
            "close": recs["close"].astype(np.float64) / factor,
            "volume": recs["volume"].astype(np.float32),
        }
    )


def _compress(raw: bytes) -> bytes:
    # Dukascopy writes LZMA "alone" files; FORMAT_ALONE is what lzma.decompress auto-detects.
    return lzma.compress(raw, format=lzma.FORMAT_ALONE, preset=6) if raw else b""


def encode_ticks(
    ms: np.ndarray, ask: np.ndarray, bid: np.ndarray, ask_volume: np.ndarray, bid_volume: np.ndarray
) -> bytes:
    """Encode one hour of ticks (integer points) as a BI5 file; no ticks gives a 0-byte file."""
    recs = np.empty(len(ms), dtype=TICK_RECORD)
    recs["ms"], recs["ask"], recs["bid"] = ms, ask, bid
    recs["ask_volume"], recs["bid_volume"] = ask_volume, bid_volume
    return _compress(recs.tobytes())


def encode_candles(
    sec: np.ndarray, open_: np.ndarray, close: np.ndarray, low: np.ndarray, high: np.ndarray, volume: np.ndarray
) -> bytes:
    recs = np.empty(len(sec), dtype=CANDLE_RECORD)
    recs["sec"], recs["open"], recs["close"], recs["low"], recs["high"], recs["volume"] = (
        sec, open_, close, low, high, volume,
    )
    return _compress(recs.tobytes())


def hour_path(symbol: str, hour_start: datetime) -> str:
    """Relative datafeed path of an hour's tick file; the month is zero-based, as Dukascopy does."""
    return f"{symbol}/{hour_start.year:04d}/{hour_start.month - 1:02d}/{hour_start.day:02d}/{hour_start.hour:02d}h_ticks.bi5"


def day_hours(day: date) -> list[datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return [start + timedelta(hours=h) for h in range(24)]

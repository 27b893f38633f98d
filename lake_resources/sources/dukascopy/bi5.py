"""Dukascopy BI5 codec: LZMA ("alone" format) files of fixed-size big-endian records.

Ticks: 20 bytes = uint32 ms since the hour, uint32 ask, uint32 bid, float32 ask volume,
float32 bid volume. Candles: 24 bytes = uint32 seconds since the period start, uint32 open,
close, low, high (that order), float32 volume. Prices are integer points / decimal factor.

Decoding is vectorised (numpy structured dtype over the decompressed buffer); LZMA dominates the
cost, and it releases the GIL, as numpy's casts do, so a day's 24 hours are decompressed and then
converted into the day's columns in a thread pool.
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
#: Most tick records one hourly file may hold. Dukascopy's busiest hours hold tens of thousands and the
#: benchmark's synthetic days under 100,000 an hour; 4 million (1,111 ticks a second for a whole hour)
#: is far beyond any real feed, so a file decompressing to more (80 MB) is refused unread as a
#: decompression bomb, without ever allocating more than that bound.
MAX_TICKS_PER_HOUR = 4_000_000
MAX_HOUR_BYTES = MAX_TICKS_PER_HOUR * 20
#: BI5 prices are uint32 points; the type's maximum is what an overflowed or unset field reads as
#: (EURUSD 42,949.67295), never a quote: such records are set aside like records beyond the hour.
U32_MAX = 2**32 - 1
_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000


class Bi5Error(ValueError):
    """A BI5 payload could not be decoded; the message names the file and what is wrong."""


def _epoch_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1_000


_CHUNK = 16 * 1024 * 1024  # decompressed bytes per step of decompress()


class Bi5TooLarge(Bi5Error):
    """A payload decompresses to more than the allowed bound (a decompression bomb)."""


def decompress(payload: bytes, *, name: str = "<bytes>", max_bytes: int | None = None) -> bytes:
    """LZMA-decompress one file; a 0-byte file is an empty period (returns b"").

    With ``max_bytes``, output beyond it raises :class:`Bi5TooLarge` having held at most
    ``max_bytes + 1`` decompressed bytes (``LZMADecompressor(max_length=…)``), so a few KB that would
    expand to gigabytes cost nothing. Like ``lzma.decompress``, concatenated streams are read and
    trailing bytes that are not a stream are ignored.
    """
    if not payload:
        return b""
    parts: list[bytes] = []
    size, data, first = 0, payload, True
    while data:
        decomp = lzma.LZMADecompressor()
        while True:  # in chunks: a bomb is stopped holding the bound, not twice it (as one big call would)
            room = _CHUNK if max_bytes is None else min(_CHUNK, max_bytes + 1 - size)
            try:
                part = decomp.decompress(data, max_length=room)
            except lzma.LZMAError as exc:
                if not first:  # trailing junk after a complete stream, as lzma.decompress tolerates
                    return b"".join(parts)
                raise Bi5Error(f"{name}: corrupt or truncated LZMA stream ({exc})") from None
            data = b""
            size += len(part)
            if max_bytes is not None and size > max_bytes:
                raise Bi5TooLarge(
                    f"{name}: decompresses to more than {max_bytes:,} bytes (the bound of {max_bytes // 20:,} "
                    "tick records an hour): refused as a decompression bomb"
                )
            parts.append(part)
            if decomp.eof:
                break
            if decomp.needs_input:
                raise Bi5Error(f"{name}: truncated LZMA stream (ended before the end marker)")
        data, first = decomp.unused_data, False
    return parts[0] if len(parts) == 1 else b"".join(parts)  # one stream (every real file): no copy


def records(raw: bytes, dtype: np.dtype, *, name: str = "<bytes>") -> np.ndarray:
    """View a decompressed payload as structured records, refusing a ragged tail."""
    if len(raw) % dtype.itemsize:
        raise Bi5Error(
            f"{name}: payload of {len(raw)} bytes is not a multiple of the {dtype.itemsize}-byte record"
        )
    return np.frombuffer(raw, dtype=dtype)


def tick_points(payload: bytes, *, name: str = "<bytes>", max_bytes: int | None = MAX_HOUR_BYTES) -> np.ndarray:
    """Decompress and view a tick file as raw integer-point records (no normalisation)."""
    return records(decompress(payload, name=name, max_bytes=max_bytes), TICK_RECORD, name=name)


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


def sentinel_price_records(recs: np.ndarray) -> np.ndarray:
    """Indices of tick records whose bid or ask is the uint32 maximum (not a price: see ``U32_MAX``).
    Two reductions settle the normal case, as in :func:`beyond_hour_records`."""
    if recs.size == 0 or max(int(recs["ask"].max()), int(recs["bid"].max())) < U32_MAX:
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero((recs["ask"] == U32_MAX) | (recs["bid"] == U32_MAX))


def _tick_columns(recs: np.ndarray, hour_start_ns: np.ndarray | int, factor: float) -> dict[str, np.ndarray]:
    return {
        "ts": recs["ms"].astype(np.int64) * _NS_PER_MS + hour_start_ns,
        "bid": recs["bid"].astype(np.float64) / factor,
        "ask": recs["ask"].astype(np.float64) / factor,
        "bid_volume": recs["bid_volume"].astype(np.float32),
        "ask_volume": recs["ask_volume"].astype(np.float32),
    }


def _columns_frame(columns: dict[str, np.ndarray]) -> pl.DataFrame:
    # int64 epoch-ns read straight as Datetime("ns", "UTC"): no copy, no cast
    return pl.DataFrame(
        {
            "ts": pl.Series("ts", columns["ts"], dtype=TS_DTYPE),
            **{name: columns[name] for name in ("bid", "ask", "bid_volume", "ask_volume")},
        }
    )


def ticks_frame(recs: np.ndarray, hour_start_ns: np.ndarray | int, decimal_factor: int) -> pl.DataFrame:
    """Normalise tick records: absolute UTC ns timestamps, prices = points / decimal factor.

    ``hour_start_ns`` is a scalar, or one value per record when several hours are concatenated.
    """
    return _columns_frame(_tick_columns(recs, hour_start_ns, float(decimal_factor)))


def decode_ticks(payload: bytes, hour_start: datetime, decimal_factor: int, *, name: str = "<bytes>",
                 max_bytes: int | None = MAX_HOUR_BYTES) -> pl.DataFrame:
    """Decode one hourly tick file into ``ts, bid, ask, bid_volume, ask_volume`` (at most ``max_bytes``
    decompressed: :class:`Bi5TooLarge` beyond)."""
    return ticks_frame(tick_points(payload, name=name, max_bytes=max_bytes), _epoch_ns(hour_start), decimal_factor)


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


def _hour_records(hour: int, payload: bytes, name: str,
                  max_bytes: int | None) -> tuple[np.ndarray | None, list[HourProblem]]:
    """One hour's records (worker thread): decompress (bounded), view, set aside records beyond the
    hour or priced at the uint32 maximum. Returns (records or None for an unreadable file, problems)."""
    try:
        recs = records(decompress(payload, name=name, max_bytes=max_bytes), TICK_RECORD, name=name)
    except Bi5Error as exc:
        return None, [HourProblem(hour, name, str(exc), None)]
    problems = []
    beyond = beyond_hour_records(recs)
    if beyond.size:
        message = f"{name}: {beyond.size} record(s) with a timestamp beyond the hour (ms >= {MS_PER_HOUR})"
        problems.append(HourProblem(hour, name, message, beyond.size))
    sentinel = sentinel_price_records(recs)
    if sentinel.size:
        sentinel = np.setdiff1d(sentinel, beyond, assume_unique=True)
        if sentinel.size:
            message = f"{name}: {sentinel.size} record(s) with a bid or ask at the uint32 maximum ({U32_MAX}): not a price"
            problems.append(HourProblem(hour, name, message, sentinel.size))
    if not problems:
        return recs, problems
    return np.delete(recs, np.union1d(beyond, sentinel)), problems


def _fill_columns(recs: np.ndarray, hour_start_ns: int, factor: float, out: dict[str, np.ndarray], start: int) -> None:
    """Convert one hour's records into rows ``start:start + len(recs)`` of the day's columns (worker
    thread): in place, no temporaries, the same arithmetic as :func:`ticks_frame`."""
    rows = slice(start, start + len(recs))
    ts = out["ts"][rows]
    ts[...] = recs["ms"]
    ts *= _NS_PER_MS
    ts += hour_start_ns
    for side in ("bid", "ask"):
        prices = out[side][rows]
        prices[...] = recs[side]
        prices /= factor
    out["bid_volume"][rows] = recs["bid_volume"]
    out["ask_volume"][rows] = recs["ask_volume"]


#: The decoded columns and their dtypes (``ts`` as epoch ns, read by polars as Datetime("ns", "UTC")).
_COLUMN_DTYPES = {
    "ts": np.int64, "bid": np.float64, "ask": np.float64, "bid_volume": np.float32, "ask_volume": np.float32,
}


def decode_day_ticks_checked(
    hours: Sequence[bytes | None],
    day: date,
    decimal_factor: int,
    *,
    names: Sequence[str] | None = None,
    threads: int = 2,
    max_hour_bytes: int | None = MAX_HOUR_BYTES,
) -> tuple[pl.DataFrame, list[HourProblem]]:
    """Decode a day's 24 hourly payloads, setting aside what cannot be trusted.

    An hour whose file is corrupt, truncated, ragged or decompresses to more than ``max_hour_bytes``
    (:data:`MAX_HOUR_BYTES`: a decompression bomb, stopped at the bound) is skipped whole; records whose
    offset lies beyond the hour (ms >= 3,600,000) or priced at the uint32 maximum are dropped. Each is
    reported as one :class:`HourProblem` (a count, not a row per record).

    Both stages run in ``threads`` threads (LZMA and numpy's casts release the GIL): the hours are
    decompressed, then each hour converts its records straight into its rows of the day's columns,
    allocated once the hours' sizes are known: no per-hour columns, no serial concatenation.
    """
    if len(hours) != 24:
        raise ValueError(f"expected 24 hourly payloads, got {len(hours)}")
    names = list(names) if names is not None else [f"{day.isoformat()} {h:02d}h_ticks.bi5" for h in range(24)]
    factor = float(decimal_factor)
    day_ns = _epoch_ns(datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
    # largest files first, so no thread is left with a big hour while the other idles at the end
    work = sorted((h for h, p in enumerate(hours) if p), key=lambda h: len(hours[h]), reverse=True)
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 and len(work) > 1 else None
    run = pool.map if pool is not None else map
    try:
        found = dict(zip(work, run(lambda h: _hour_records(h, hours[h], names[h], max_hour_bytes), work)))
        problems = [p for h in sorted(found) for p in found[h][1]]
        decoded = {h: recs for h, (recs, _) in found.items() if recs is not None}
        del found
        total = sum(len(recs) for recs in decoded.values())
        out = {name: np.empty(total, dtype=dtype) for name, dtype in _COLUMN_DTYPES.items()}
        starts, offset = {}, 0
        for h in sorted(decoded):  # rows in hour order
            starts[h] = offset
            offset += len(decoded[h])

        def fill(h: int) -> None:
            _fill_columns(decoded.pop(h), day_ns + h * 3600 * _NS_PER_S, factor, out, starts[h])  # pop: free as we go

        list(run(fill, [h for h in work if h in decoded]))
    finally:
        if pool is not None:
            pool.shutdown()
    return _columns_frame(out), problems


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

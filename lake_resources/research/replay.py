"""Replay per-symbol streams of time-ordered batches as one stream in global time order.

Each symbol's stream is an iterable of polars frames (a ``ts`` Datetime column, sorted within and
across batches). The merge is a k-way merge on ``(ts, symbol)``: rows sharing a timestamp come out
by symbol, and within one symbol in their stream order. It works a batch at a time (see
:func:`_merged`): a stream's next batch is pulled only when the merge cannot go on without it, so
memory holds about one batch per symbol (plus rows that tie on the timestamp a batch ends on).

``speed`` paces the output against the data's clock: 60 replays an hour of data in a minute, 1 in
real time, None as fast as possible. ``clock``/``sleep`` are injectable (tests use a fake clock).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class ReplayError(ValueError):
    """A stream broke the replay contract; the message names the symbol and the batch."""


@dataclass
class _Stream:
    symbol: str
    batches: Iterator[pl.DataFrame]
    pending: pl.DataFrame | None = None  # rows pulled but not yet emitted
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # their int64 ns
    batch_no: int = -1
    exhausted: bool = False

    def pull(self) -> None:
        """Append the next non-empty batch to the pending rows (or mark the stream exhausted)."""
        for frame in self.batches:
            self.batch_no += 1
            where = f"stream {self.symbol} batch {self.batch_no}"
            if not isinstance(frame, pl.DataFrame):
                raise ReplayError(f"{where}: expected a polars DataFrame, got {type(frame).__name__}")
            if frame.height == 0:
                continue
            if "ts" not in frame.columns or not isinstance(frame.schema["ts"], pl.Datetime):
                raise ReplayError(f"{where}: needs a Datetime column ts")
            if frame["ts"].null_count():
                raise ReplayError(f"{where}: null ts")
            ts = frame["ts"].dt.cast_time_unit("ns").cast(pl.Int64).to_numpy()
            if len(ts) > 1 and (bad := np.diff(ts) < 0).any():
                raise ReplayError(f"{where}: ts not in time order at row {int(np.flatnonzero(bad)[0]) + 1}")
            if len(self.ts) and ts[0] < self.ts[-1]:
                raise ReplayError(f"{where}: starts at {frame['ts'][0]}, before the end of the previous batch")
            if "symbol" in frame.columns:
                others = frame["symbol"].unique().to_list()
                if others != [self.symbol]:
                    raise ReplayError(f"{where}: symbol column holds {others}, not {self.symbol!r}")
            else:
                frame = frame.with_columns(pl.lit(self.symbol).alias("symbol"))
            self.pending = frame if self.pending is None else pl.concat([self.pending, frame], how="vertical_relaxed")
            self.ts = np.concatenate((self.ts, ts)) if len(self.ts) else ts
            return
        self.exhausted = True

    def take(self, count: int) -> pl.DataFrame:
        taken = self.pending.head(count)
        self.pending, self.ts = self.pending.slice(count), self.ts[count:]
        return taken


class _Pacer:
    """Sleeps so that data time t is released at start + (t - first) / speed of wall time."""

    def __init__(self, speed: float | None, clock: Clock, sleep: Sleep):
        if speed is not None and not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive multiplier or None, got {speed!r}")
        self.speed, self.clock, self.sleep = speed, clock, sleep
        self.first_ns: int | None = None
        self.start = 0.0

    def wait_for(self, ts_ns: int, first_ns: int | None = None) -> None:
        """Wait until ``ts_ns`` is due; the first call anchors data time ``first_ns`` (default ts_ns) to now."""
        if self.speed is None:
            return
        if self.first_ns is None:
            self.first_ns, self.start = (ts_ns if first_ns is None else first_ns), self.clock()
        delay = self.start + (ts_ns - self.first_ns) / 1e9 / self.speed - self.clock()
        if delay > 0:
            self.sleep(delay)


Round = tuple[list[pl.DataFrame], np.ndarray, np.ndarray]


def _merged(streams: Mapping[str, Iterable[pl.DataFrame]]) -> Iterator[Round]:
    """Rounds of the merge: per-symbol parts, the order that interleaves their concatenated rows in
    global (ts, symbol) order, and the timestamps (int64 ns) in that order.

    Each round takes every pending row strictly before the *horizon*: the earliest last-pulled
    timestamp among streams that may still have more. Nothing later can precede those rows, even on a
    tie (a stream's next batch may repeat its last timestamp, hence "strictly"). The streams that set
    the horizon pull their next batch; the others wait, so each holds about one batch.
    """
    states = [_Stream(symbol, iter(batches)) for symbol, batches in sorted(streams.items())]
    for state in states:
        state.pull()
    while live := [s for s in states if len(s.ts)]:
        still_open = [s for s in live if not s.exhausted]
        horizon = min(int(s.ts[-1]) for s in still_open) if still_open else None
        parts, stamps = [], []
        for state in live:  # in symbol order, so a stable sort by ts breaks ties by symbol
            cut = len(state.ts) if horizon is None else int(np.searchsorted(state.ts, horizon, side="left"))
            if cut:
                stamps.append(state.ts[:cut])
                parts.append(state.take(cut))
        if parts:
            ts = np.concatenate(stamps)
            order = np.argsort(ts, kind="stable")
            yield parts, order, ts[order]
        for state in still_open:
            if not len(state.ts) or state.ts[-1] == horizon:
                state.pull()


def replay_frames(
    streams: Mapping[str, Iterable[pl.DataFrame]],
    *,
    speed: float | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> Iterator[pl.DataFrame]:
    """Frames of rows (several symbols each; columns are the union, null where a symbol lacks one)
    in global time order, one per merge round.

    With ``speed``, a frame is released when its *last* row is due, so no row arrives before its time.
    """
    pacer = _Pacer(speed, clock, sleep)
    for parts, order, ts in _merged(streams):
        pacer.wait_for(int(ts[-1]), first_ns=int(ts[0]))
        yield parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed")[order]


def replay(
    streams: Mapping[str, Iterable[pl.DataFrame]],
    *,
    speed: float | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Rows (dicts, ``ts`` as a UTC datetime) in global time order; ``speed`` paces every row."""
    pacer = _Pacer(speed, clock, sleep)
    for parts, order, ts in _merged(streams):
        rows = [row for part in parts for row in part.iter_rows(named=True)]  # each keeps its own columns
        for i, ts_ns in zip(order.tolist(), ts.tolist()):
            pacer.wait_for(ts_ns)
            yield rows[i]


def replay_to(
    streams: Mapping[str, Iterable[pl.DataFrame]],
    callback: Callable[[dict[str, Any]], None],
    *,
    speed: float | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> int:
    """Call ``callback(row)`` for every row in global time order; returns the number of rows."""
    count = 0
    for row in replay(streams, speed=speed, clock=clock, sleep=sleep):
        callback(row)
        count += 1
    return count


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    return value


def to_jsonl(rows: Iterable[Mapping[str, Any]], out: IO[str] | str | Path) -> int:
    """Write rows as JSON Lines (datetimes in ISO 8601, NaN/inf as null); returns the row count."""
    if isinstance(out, (str, Path)):
        with open(out, "w", encoding="utf-8") as handle:
            return to_jsonl(rows, handle)
    count = 0
    for row in rows:
        out.write(json.dumps({k: _json_value(v) for k, v in row.items()}, separators=(",", ":")) + "\n")
        count += 1
    return count


# --- replaying the lake (``lake replay``) ----------------------------------------------------------


def parse_speed(text: str | None) -> float | None:
    """``"60x"`` (or ``"60"``) -> 60.0; None -> None (as fast as possible)."""
    from lake_resources.catalog.validation import LakeValidationError

    if text is None:
        return None
    body = text.strip().lower().removesuffix("x")
    try:
        speed = float(body)
    except ValueError:
        raise LakeValidationError(f"invalid --speed {text!r}: use a multiple of real time such as 60x or 0.5x") from None
    if not (speed > 0 and math.isfinite(speed)):
        raise LakeValidationError(f"invalid --speed {text!r}: must be a positive multiple of real time")
    return speed


def lake_streams(
    client: Any,
    dataset: str,
    symbols: Iterable[str],
    start: str | date | datetime,
    end: str | date | datetime,
    *,
    columns: list[str] | None = None,
) -> dict[str, Iterator[pl.DataFrame]]:
    """One lazy stream per symbol of ``dataset`` over ``[start, end]``: a batch per stored day.

    Each batch is read through ``client.read`` (a :class:`~lake_resources.client.LakeClient`) only
    when the merge asks for it, so memory holds about one day per symbol whatever the range. A date
    bound covers its whole day (as in ``LakeClient.read``); datetimes cut inside the first/last day.
    """
    from lake_resources.catalog.datasets import dataset_spec
    from lake_resources.catalog.validation import LakeValidationError, time_bound, validate_symbol
    from lake_resources.storage import day_bounds

    spec = dataset_spec(dataset)
    if set(spec.partition_by) != {"symbol", "date"} or not spec.time_column:
        raise LakeValidationError(f"replay needs a dataset partitioned by symbol and date, not {dataset}")
    t0, t1 = time_bound(start, end=False), time_bound(end, end=True)
    if t1 <= t0:
        raise LakeValidationError(f"replay: end {end} is not after start {start}")

    def days_of(symbol: str) -> Iterator[pl.DataFrame]:
        located = client.partitions(dataset, symbols=[symbol], start=t0, end=t1)
        for day in sorted({dict(loc.partition)["date"] for loc in located}):
            lo, hi = day_bounds(day)
            yield client.read(dataset, symbols=[symbol], start=max(lo, t0), end=min(hi, t1), columns=columns)

    symbols = [validate_symbol(s) for s in symbols]
    if hasattr(client, "check_symbols"):  # before any row is written: an unknown symbol is an error, not 0 rows
        symbols = client.check_symbols(dataset, symbols)
    return {symbol: days_of(symbol) for symbol in dict.fromkeys(symbols)}


def cli_replay(settings: Any, args: Any, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> int:
    """``lake replay``: JSON lines of ``args.dataset`` rows in global time order across ``args.symbols``.

    ``args``: dataset, symbols (comma list), start, end, speed (``"60x"`` or None),
    as_fast_as_possible, out (a file path, or None for stdout). Without ``--speed`` it runs as fast
    as possible. Paced output is flushed line by line, so a consumer sees each row when it is due.
    """
    import sys

    from lake_resources.catalog.validation import LakeValidationError
    from lake_resources.client import LakeClient

    speed = None if getattr(args, "as_fast_as_possible", False) else parse_speed(getattr(args, "speed", None))
    symbols = [s.strip() for s in (args.symbols or "").split(",") if s.strip()]
    if not symbols:
        raise LakeValidationError("replay: --symbols needs at least one symbol")
    client = LakeClient(settings)
    streams = lake_streams(client, args.dataset, symbols, args.start, args.end)
    rows = replay(streams, speed=speed, clock=clock, sleep=sleep)
    out_path = getattr(args, "out", None)
    if out_path:
        with open(out_path, "w", encoding="utf-8", buffering=1 if speed else -1) as handle:
            count = to_jsonl(rows, handle)
    else:
        if speed and hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(line_buffering=True)
        try:
            count = to_jsonl(rows, sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as Unix tools do
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    where = f" to {out_path}" if out_path else ""
    pace = f"at {speed:g}x" if speed else "as fast as possible"
    print(f"replayed {count} rows of {args.dataset} for {', '.join(symbols)} ({args.start} → {args.end}) {pace}{where}",
          file=sys.stderr)
    return 0

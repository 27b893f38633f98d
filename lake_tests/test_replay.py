"""Replay: global time order, tie stability, lazy (bounded) consumption, pacing on a fake clock, JSONL."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lake_resources.research import replay as R
from lake_tests.test_features import real_eurusd_ticks

UTC = timezone.utc
T0 = datetime(2019, 2, 4, tzinfo=UTC)


def batches(frame: pl.DataFrame, sizes: list[int]) -> list[pl.DataFrame]:
    out, start = [], 0
    for size in sizes:
        out.append(frame.slice(start, size))
        start += size
    return out + ([frame.slice(start)] if start < frame.height else [])


def random_chunks(frame: pl.DataFrame, seed: int) -> list[pl.DataFrame]:
    rng = np.random.default_rng(seed)
    return batches(frame, rng.integers(0, 5000, frame.height // 2000 + 1).tolist())  # includes empty batches


def frame_at(seconds: list[float], symbol: str | None = None, **columns) -> pl.DataFrame:
    ts = pl.Series("ts", [T0 + timedelta(seconds=s) for s in seconds]).cast(pl.Datetime("ns", "UTC"))
    frame = pl.DataFrame({"ts": ts, **columns})
    return frame.with_columns(pl.lit(symbol).alias("symbol")) if symbol else frame


@pytest.fixture(scope="module")
def real_streams(datafeed_dir: Path) -> dict[str, pl.DataFrame]:
    """Three symbols: the real EURUSD ticks, every other real tick (exact timestamp ties with EURUSD,
    and real ticks sharing a millisecond inside one stream), and a once-a-second synthetic stream."""
    ticks = real_eurusd_ticks(datafeed_dir).drop("symbol").with_row_index("seq")
    seconds = pl.DataFrame({"ts": pl.datetime_range(T0, T0 + timedelta(hours=24), "1s", eager=True, time_unit="ns")})
    return {
        "EURUSD": ticks,
        "EURUSD.B": ticks.gather_every(2).with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias("seq")),
        "AAA": seconds.with_row_index("seq").with_columns(bid=pl.lit(1.0), ask=pl.lit(1.0)),
    }


def expected_order(streams: dict[str, pl.DataFrame]) -> pl.DataFrame:
    everything = pl.concat(
        [f.select("ts", "seq").with_columns(pl.lit(s).alias("symbol")) for s, f in streams.items()]
    )
    return everything.sort("ts", "symbol", "seq").select("ts", "symbol", "seq")


def test_frames_come_out_in_global_time_order(real_streams: dict[str, pl.DataFrame]) -> None:
    streams = {s: random_chunks(f, seed=i) for i, (s, f) in enumerate(real_streams.items())}
    merged = pl.concat(list(R.replay_frames(streams)), how="diagonal_relaxed")
    assert merged.select("ts", "symbol", "seq").equals(expected_order(real_streams))
    assert merged.height == sum(f.height for f in real_streams.values())


def test_rows_come_out_in_global_time_order(real_streams: dict[str, pl.DataFrame]) -> None:
    part = {s: f.filter(pl.col("ts") < T0 + timedelta(hours=3)) for s, f in real_streams.items()}
    rows = list(R.replay({s: random_chunks(f, seed=7) for s, f in part.items()}))
    got = pl.DataFrame([(r["ts"], r["symbol"], r["seq"]) for r in rows], schema=["ts", "symbol", "seq"], orient="row")
    expected = expected_order(part).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    assert got.with_columns(pl.col("seq").cast(pl.UInt32)).equals(expected)
    columns = {s: {*f.columns, "symbol"} for s, f in part.items()}
    assert all(set(r) == columns[r["symbol"]] for r in rows)


def test_ties_go_by_symbol_then_stream_order() -> None:
    streams = {
        "ZZZ": [frame_at([0, 1, 1], n=[1, 2, 3])],
        "AAA": [frame_at([1], n=[4]), frame_at([1, 2], n=[5, 6])],
        "MMM": [frame_at([0, 1], n=[7, 8])],
    }
    rows = [(r["symbol"], r["n"]) for r in R.replay(streams)]
    assert rows == [("MMM", 7), ("ZZZ", 1), ("AAA", 4), ("AAA", 5), ("MMM", 8), ("ZZZ", 2), ("ZZZ", 3), ("AAA", 6)]


class CountingBatches:
    """A stream that counts how many batches the replay pulled from it."""

    def __init__(self, offset: float, n_batches: int, rows: int = 100):
        self.pulled = 0
        self.offset, self.n_batches, self.rows = offset, n_batches, rows

    def __iter__(self):
        for b in range(self.n_batches):
            self.pulled += 1
            start = b * self.rows
            yield frame_at([start + i + self.offset for i in range(self.rows)], value=list(range(self.rows)))


def test_streams_are_pulled_lazily_one_batch_at_a_time() -> None:
    streams = {"A": CountingBatches(0.0, 50), "B": CountingBatches(0.5, 50), "C": CountingBatches(0.25, 50)}
    rows = R.replay(streams)
    assert all(s.pulled == 0 for s in streams.values())  # nothing is read before the first row is asked for
    next(rows)
    assert [s.pulled for s in streams.values()] == [1, 1, 1]
    for _ in range(3 * 250 - 1):  # rows up to t = 250 s of every stream
        next(rows)
    # 250 rows of each stream consumed = batch 3 of each in use: 3 pulled, never the whole stream
    assert [s.pulled for s in streams.values()] == [3, 3, 3]
    a, b = CountingBatches(0.0, 50), CountingBatches(0.5, 50)
    frames = R.replay_frames({"A": a, "B": b})
    first = next(frames)
    # everything before A's first batch ends (t < 99 s) is settled by one batch of each stream
    assert first.height == 198 and (a.pulled, b.pulled) == (1, 1)
    assert first["ts"].max() < T0 + timedelta(seconds=99)
    next(frames)
    assert (a.pulled, b.pulled) == (2, 1)  # only the stream that ran out pulls


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacing_follows_data_time_divided_by_speed() -> None:
    fake = FakeClock()
    streams = {"A": [frame_at([0, 60, 120])], "B": [frame_at([30, 120]), frame_at([300])]}
    emitted = []
    for row in R.replay(streams, speed=60, clock=fake.clock, sleep=fake.sleep):
        emitted.append((row["symbol"], fake.now - 1000.0))
    # 60x: data second s is due at s / 60 of wall time after the first row
    assert emitted == [("A", 0.0), ("B", 0.5), ("A", 1.0), ("A", 2.0), ("B", 2.0), ("B", 5.0)]
    assert all(s > 0 for s in fake.sleeps)
    # a consumer that falls behind is not made to sleep a negative time, and catches up
    slow = FakeClock()
    for i, _ in enumerate(R.replay(streams, speed=60, clock=slow.clock, sleep=slow.sleep)):
        slow.now += 3.0 if i == 0 else 0.0
    assert slow.sleeps == [pytest.approx(2.0)]  # only the 300 s row (due at 5 s) waits, from 3 s
    unpaced = FakeClock()
    assert len(list(R.replay(streams, speed=None, clock=unpaced.clock, sleep=unpaced.sleep))) == 6
    assert unpaced.sleeps == []
    with pytest.raises(ValueError, match="speed must be a positive"):
        list(R.replay(streams, speed=0))


def test_frames_are_released_when_their_last_row_is_due() -> None:
    fake = FakeClock()
    streams = {"A": [frame_at([0, 1, 2])], "B": [frame_at([10, 11])]}
    seen = [
        (f["symbol"].to_list(), fake.now - 1000.0)
        for f in R.replay_frames(streams, speed=2, clock=fake.clock, sleep=fake.sleep)
    ]
    # rounds: before A's batch end (2 s), then before B's (11 s), then the rest; at 2x speed
    assert seen == [(["A", "A"], 0.5), (["A", "B"], 5.0), (["B"], 5.5)]


def test_jsonl_and_callback_outputs() -> None:
    streams = {"A": [frame_at([0, 1.5], price=[1.5, float("nan")])], "B": [frame_at([1], price=[2.0])]}
    out = io.StringIO()
    assert R.to_jsonl(R.replay(streams), out) == 3
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [
        {"ts": "2019-02-04T00:00:00+00:00", "price": 1.5, "symbol": "A"},
        {"ts": "2019-02-04T00:00:01+00:00", "price": 2.0, "symbol": "B"},
        {"ts": "2019-02-04T00:00:01.500000+00:00", "price": None, "symbol": "A"},
    ]
    seen = []
    assert R.replay_to(streams, seen.append) == 3
    assert [r["symbol"] for r in seen] == ["A", "B", "A"]


def test_jsonl_to_a_path(tmp_path: Path) -> None:
    path = tmp_path / "replay.jsonl"
    assert R.to_jsonl(R.replay({"A": [frame_at([0, 1])]}), path) == 2
    assert len(path.read_text().splitlines()) == 2


def test_broken_streams_are_named() -> None:
    with pytest.raises(R.ReplayError, match="stream A batch 1: ts not in time order at row 1"):
        list(R.replay({"A": [frame_at([0]), frame_at([5, 3])]}))
    with pytest.raises(R.ReplayError, match="stream A batch 1: starts at .* before the end of the previous batch"):
        list(R.replay({"A": [frame_at([0, 5]), frame_at([4])]}))
    with pytest.raises(R.ReplayError, match=r"stream A batch 0: symbol column holds \['B'\]"):
        list(R.replay({"A": [frame_at([0], symbol="B")]}))
    with pytest.raises(R.ReplayError, match="stream A batch 0: needs a Datetime column ts"):
        list(R.replay({"A": [pl.DataFrame({"time": [1]})]}))

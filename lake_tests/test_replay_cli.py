"""``lake replay``: rows of the lake in global time order across symbols, read a day at a time.

The lake holds minute bars built from the real EURUSD ticks of 2019-02-04 (Dukascopy fixtures) by
the production bar builder, copied to the next two days with rescaled prices, and a second symbol
made of every third of those bars (its timestamps tie exactly with EURUSD's).
"""

from __future__ import annotations

import json
from argparse import Namespace
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from lake_assets.cli import main
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.client import LakeClient
from lake_resources.research.replay import cli_replay, lake_streams, parse_speed, replay
from lake_resources.settings import LakeSettings
from lake_resources.storage import Lake
from lake_resources.transforms.bars import minute_bars
from lake_tests.test_features import real_eurusd_ticks, shifted_day

DAYS = [date(2019, 2, 4), date(2019, 2, 5), date(2019, 2, 6)]


@pytest.fixture(scope="module")
def replay_lake(tmp_path_factory, datafeed_dir: Path) -> LakeSettings:
    settings = LakeSettings(home=tmp_path_factory.mktemp("replay") / "lake")
    lake = Lake(settings)
    real = minute_bars(real_eurusd_ticks(datafeed_dir))
    assert real.height == 1440
    for i, day in enumerate(DAYS):
        eurusd = shifted_day(real, i, 1.0 + i / 100)
        lake.write("bars_1m", (("symbol", "EURUSD"), ("date", day.isoformat())), eurusd)
        other = shifted_day(eurusd.gather_every(3), 0, 1.2, symbol="GBPUSD")
        lake.write("bars_1m", (("symbol", "GBPUSD"), ("date", day.isoformat())), other)
    return settings


def args(**overrides) -> Namespace:
    base = dict(dataset="bars_1m", symbols="EURUSD,GBPUSD", start="2019-02-04", end="2019-02-06",
                speed=None, as_fast_as_possible=True, out=None)
    return Namespace(**{**base, **overrides})


def read_jsonl(path: Path) -> pl.DataFrame:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return pl.DataFrame(rows).with_columns(pl.col("ts").str.to_datetime(time_unit="ns", time_zone="UTC"))


def expected_order(settings: LakeSettings, start, end) -> pl.DataFrame:
    """Every stored row in the range, ordered by (ts, symbol): the merge the replay must produce."""
    frame = LakeClient(settings).read("bars_1m", symbols=["EURUSD", "GBPUSD"], start=start, end=end)
    return frame.sort("ts", "symbol")


def test_as_fast_as_possible_streams_every_row_in_global_time_order(replay_lake: LakeSettings, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    assert cli_replay(replay_lake, args(out=str(out))) == 0
    got = read_jsonl(out)
    expected = expected_order(replay_lake, "2019-02-04", "2019-02-06")
    assert got.height == expected.height == 3 * (1440 + 480)
    assert got.select("ts", "symbol").equals(expected.select("ts", "symbol"))
    assert got["close"].to_list() == expected["close"].to_list()  # the rows themselves, not just their keys


def test_times_cut_inside_days_and_the_command_line_works(replay_lake: LakeSettings, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "cut.jsonl"
    monkeypatch.setenv("LAKE_HOME", str(replay_lake.home))
    start, end = "2019-02-04T23:30:00Z", "2019-02-05T00:30:00Z"
    code = main(["replay", "--symbols", "EURUSD,GBPUSD", "--start", start, "--end", end, "--as-fast-as-possible", "--out", str(out)])
    assert code == 0
    got = read_jsonl(out)
    expected = expected_order(replay_lake, start, end)
    assert got.height == expected.height == 80  # 60 + 20 minutes: [start, end)
    assert got.select("ts", "symbol").equals(expected.select("ts", "symbol"))
    assert f"replayed {expected.height} rows" in capsys.readouterr().err
    assert main(["replay", "--dataset", "heuristic_defs", "--symbols", "EURUSD", "--start", "2019-02-04", "--end", "2019-02-04"]) == 2
    assert "partitioned by symbol and date" in capsys.readouterr().err


class RecordingClient(LakeClient):
    """A LakeClient that logs each read (symbol, start, end) with how many rows were emitted by then."""

    def __init__(self, settings: LakeSettings, emitted: dict[str, int]):
        super().__init__(settings)
        self.emitted, self.reads = emitted, []

    def read(self, dataset, *, symbols=None, start=None, end=None, **kwargs):
        self.reads.append((tuple(symbols), start, end, dict(self.emitted)))
        return super().read(dataset, symbols=symbols, start=start, end=end, **kwargs)


def test_reads_one_day_per_symbol_only_when_the_merge_needs_it(replay_lake: LakeSettings) -> None:
    emitted = {"EURUSD": 0, "GBPUSD": 0}
    client = RecordingClient(replay_lake, emitted)
    streams = lake_streams(client, "bars_1m", ["EURUSD", "GBPUSD"], "2019-02-04", "2019-02-06")
    assert client.reads == []  # nothing is read before the first row is asked for
    for row in replay(streams):
        emitted[row["symbol"]] += 1
    assert len(client.reads) == 2 * len(DAYS)
    per_day = {"EURUSD": 1440, "GBPUSD": 480}
    for (symbol,), start, end, emitted_then in client.reads:
        assert end - start == timedelta(days=1) and start.hour == 0  # one whole UTC day per read
        days_before = (start.date() - DAYS[0]).days
        # Bounded memory: day k of a symbol is read only once its earlier days are out (bar the one
        # row on which the previous batch ends, held back in case the next batch ties with it).
        assert emitted_then[symbol] >= days_before * per_day[symbol] - 1, (symbol, start)
        assert emitted_then[symbol] <= days_before * per_day[symbol]


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_speed_paces_rows_against_the_data_clock(replay_lake: LakeSettings, tmp_path: Path) -> None:
    clock = FakeClock()
    out = tmp_path / "paced.jsonl"
    start, end = "2019-02-04T10:00:00Z", "2019-02-04T12:00:00Z"
    assert cli_replay(replay_lake, args(start=start, end=end, speed="60x", as_fast_as_possible=False, out=str(out)),
                      clock=clock.time, sleep=clock.sleep) == 0
    got = read_jsonl(out)
    expected = expected_order(replay_lake, start, end)
    assert got.select("ts", "symbol").equals(expected.select("ts", "symbol"))
    span = (got["ts"][-1] - got["ts"][0]).total_seconds()
    assert span == pytest.approx(2 * 3600 - 60)
    assert clock.now - 1000.0 == pytest.approx(span / 60)  # 2 hours of data in 2 minutes of (fake) time
    assert len([s for s in clock.sleeps if s > 1e-9]) == got["ts"].n_unique() - 1  # a wait per new timestamp, none for ties


def test_speed_is_parsed_strictly() -> None:
    assert parse_speed("60x") == 60.0 and parse_speed("0.5X") == 0.5 and parse_speed("2") == 2.0
    assert parse_speed(None) is None
    for bad in ("fast", "0x", "-2x", "infx"):
        with pytest.raises(LakeValidationError, match="--speed"):
            parse_speed(bad)

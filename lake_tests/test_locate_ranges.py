"""Finding the partitions of a short time range costs the range, not the whole history.

``Lake.locate`` with a symbol and a date range probes a local tier file by file (one ``stat`` per
symbol-day and per symbol-month for compacted cold files) instead of walking every partition of the
symbol; it must find exactly what the full walk finds, in every tier and in cold month files.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.client import LakeClient
from lake_resources.lifecycle import compact
from lake_resources.storage import Lake, ParquetTier, parquet_tier

TICKS = dataset_spec("ticks")
REAL_DAY = date(2019, 2, 4)
# 2019-01-28..31 compacted into the cold month file 2019-01; Feb 4/5 hot, 6 warm, 7 cold daily, 8 hot.
PLACEMENT = {**{date(2019, 1, d): "cold" for d in range(28, 32)}, date(2019, 2, 4): "hot", date(2019, 2, 5): "hot",
             date(2019, 2, 6): "warm", date(2019, 2, 7): "cold", date(2019, 2, 8): "hot"}


@pytest.fixture
def lake(lake_settings, day_ticks, monkeypatch):
    monkeypatch.delenv("LAKE_LIFECYCLE", raising=False)
    lake = Lake(lake_settings)
    sample = day_ticks.gather_every(500)  # every hour of the real day, small
    for day, tier in PLACEMENT.items():
        shifted = sample.with_columns(pl.col("ts") + pl.duration(days=(day - REAL_DAY).days, time_unit="ns"))
        lake.write("ticks", TICKS.partition(symbol="EURUSD", date=day), shifted, tier=tier)
    lake.write("ticks", TICKS.partition(symbol="XAUUSD", date=REAL_DAY),
               sample.with_columns(symbol=pl.lit("XAUUSD")), tier="hot")
    [result] = [r for r in compact(lake, as_of="2019-02-02") if r.status == "compacted"]
    assert (result.symbol, result.month) == ("EURUSD", "2019-01")
    return lake


WINDOWS = [(d, d) for d in PLACEMENT] + [
    (date(2019, 1, 30), date(2019, 2, 5)),  # across the month file and the daily tiers
    (date(2019, 2, 1), date(2019, 2, 3)),   # nothing stored
    (date(2019, 1, 1), date(2019, 3, 31)),  # everything
]


def _expected(lake: Lake, first: date, last: date):
    everything = lake.locate(TICKS, ["EURUSD"])  # no range: every tier walked in full
    return [loc for loc in everything if first <= date.fromisoformat(dict(loc.partition)["date"]) <= last]


def test_ranged_locate_finds_what_the_full_walk_finds_without_walking(lake, monkeypatch):
    assert {(dict(l.partition)["date"], l.tier.value, l.month) for l in lake.locate(TICKS, ["EURUSD"])} == {
        (d.isoformat(), tier, "2019-01" if d.month == 1 else None) for d, tier in PLACEMENT.items()}
    expected = {window: _expected(lake, *window) for window in WINDOWS}

    def no_walk(self, prefix):
        raise AssertionError(f"walked {prefix} for a short range")

    monkeypatch.setattr(ParquetTier, "_find_data_files", no_walk)
    for (first, last), want in expected.items():
        assert lake.locate(TICKS, ["EURUSD"], first, last) == want, (first, last)


def test_long_ranges_fall_back_to_the_walk_with_the_same_answer(lake, monkeypatch):
    monkeypatch.setattr(parquet_tier, "MAX_PROBED_PARTITIONS", 2)  # read where ParquetTier lives
    for first, last in WINDOWS:
        assert lake.locate(TICKS, ["EURUSD"], first, last) == _expected(lake, first, last), (first, last)


def test_client_reads_an_hour_from_each_place(lake):
    client = LakeClient(lake=lake)
    for day in PLACEMENT:
        start = f"{day.isoformat()}T10:00Z"
        got = client.read("ticks", symbols="EURUSD", start=start, end=f"{day.isoformat()}T11:00Z")
        whole = lake.read_partition("ticks", TICKS.partition(symbol="EURUSD", date=day))
        assert got.height > 0 and got.equals(whole.filter(pl.col("ts").dt.hour() == 10)), day
    day_before = min(PLACEMENT) - timedelta(days=1)
    assert client.read("ticks", symbols="EURUSD", start=day_before, end=day_before).height == 0

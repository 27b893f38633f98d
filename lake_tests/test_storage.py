"""Tiered storage on real parts: local Parquet, a DuckDB file, and a real S3 server."""

from __future__ import annotations

import os

import polars as pl
import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.client import LakeClient
from lake_resources.storage import DATA_FILE, Lake, LakeStorageError, sha256

TICKS = dataset_spec("ticks")


def _part(day: str, symbol: str = "EURUSD"):
    return TICKS.partition(symbol=symbol, date=day)


def _shift_day(df: pl.DataFrame, days: int) -> pl.DataFrame:
    return df.with_columns(pl.col("ts") + pl.duration(days=days))


@pytest.mark.parametrize("tier", ["hot", "warm", "cold"])
def test_round_trip_each_tier(lake_settings, day_ticks, tier):
    lake = Lake(lake_settings)
    info = lake.write("ticks", _part("2019-02-04"), day_ticks, tier=tier)
    assert info.tier == tier and info.rows == day_ticks.height == 136741
    back = lake.read_partition("ticks", _part("2019-02-04"))
    assert back.schema == day_ticks.schema
    assert back.equals(day_ticks)  # order kept, incl. ticks sharing a millisecond
    ok, detail = lake.verify("ticks", _part("2019-02-04"))
    assert ok, detail


def test_round_trip_cold_on_real_s3(s3_lake_settings, day_ticks):
    lake = Lake(s3_lake_settings)
    lake.ensure_bucket()
    info = lake.write("ticks", _part("2019-02-04"), day_ticks, tier="cold")
    assert info.uri.startswith(f"s3://{s3_lake_settings.s3_bucket}/")
    assert info.uri.endswith("/ticks/symbol=EURUSD/date=2019-02-04/" + DATA_FILE)
    assert lake.cold.fs.exists(info.uri)
    assert lake.read_partition("ticks", _part("2019-02-04")).equals(day_ticks)
    assert lake.verify("ticks", _part("2019-02-04"))[0]
    # The same checksum in every tier: a move can verify the copy against the source.
    assert lake.write("ticks", _part("2019-02-04"), day_ticks, tier="warm").sha256 == info.sha256
    # ... and re-writing into warm removed the cold copy (one partition, one place).
    assert not lake.cold.fs.exists(info.uri)
    client = LakeClient(lake=lake)
    assert client.sql("select count(*) as n from ticks")["n"][0] == 136741


@pytest.mark.parametrize("tier", ["hot", "warm", "cold"])
def test_rewrite_is_idempotent(lake_settings, day_ticks, tier):
    lake = Lake(lake_settings)
    first = lake.write("ticks", _part("2019-02-04"), day_ticks, tier=tier)
    second = lake.write("ticks", _part("2019-02-04"), day_ticks, tier=tier)
    assert first.sha256 == second.sha256
    client = LakeClient(lake=lake)
    assert client.read("ticks", symbols="EURUSD").height == day_ticks.height
    assert client.sql("select count(*) as n from ticks")["n"][0] == day_ticks.height


def test_replacing_a_partition_changes_only_that_partition(lake_settings, day_ticks):
    lake = Lake(lake_settings)
    lake.write("ticks", _part("2019-02-04"), day_ticks, tier="warm")
    lake.write("ticks", _part("2019-02-05"), _shift_day(day_ticks, 1), tier="warm")
    smaller = day_ticks.head(1000)
    lake.write("ticks", _part("2019-02-04"), smaller, tier="warm")
    client = LakeClient(lake=lake)
    counts = client.sql("select cast(ts as date) d, count(*) n from ticks group by 1 order by 1")
    assert counts["n"].to_list() == [1000, day_ticks.height]


def test_crash_mid_write_keeps_previous_version(lake_settings, day_ticks, monkeypatch):
    lake = Lake(lake_settings)
    old = day_ticks.head(500)
    lake.write("ticks", _part("2019-02-04"), old)

    def crash(_fd):
        raise OSError(5, "Input/output error (simulated crash before rename)")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(LakeStorageError, match="hot tier .* write failed"):
        lake.write("ticks", _part("2019-02-04"), day_ticks)
    monkeypatch.undo()
    directory = lake_settings.hot_root / "ticks/symbol=EURUSD/date=2019-02-04"
    assert sorted(os.listdir(directory)) == ["_manifest.json", DATA_FILE]  # no temp file left behind
    assert lake.read_partition("ticks", _part("2019-02-04")).equals(old)
    assert lake.verify("ticks", _part("2019-02-04"))[0]


def test_disk_full_is_named(lake_settings, day_ticks, monkeypatch):
    lake = Lake(lake_settings)
    lake.write("ticks", _part("2019-02-04"), day_ticks.head(10))
    real_open = open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def write(self, _data):
            raise OSError(28, "No space left on device")

    def fake_open(path, mode="r", *a, **k):
        fh = real_open(path, mode, *a, **k)
        return Full(fh) if "w" in mode and ".tmp-" in str(path) else fh

    monkeypatch.setattr("builtins.open", fake_open)
    with pytest.raises(LakeStorageError, match=r"hot tier .* is full \(no space left on device\)"):
        lake.write("ticks", _part("2019-02-04"), day_ticks)
    monkeypatch.undo()
    assert lake.read_partition("ticks", _part("2019-02-04")).height == 10


def test_reads_span_tiers_and_return_each_row_once(lake_settings, day_ticks):
    lake = Lake(lake_settings)
    lake.write("ticks", _part("2019-02-04"), day_ticks, tier="hot")
    lake.write("ticks", _part("2019-02-05"), _shift_day(day_ticks, 1), tier="warm")
    lake.write("ticks", _part("2019-02-06"), _shift_day(day_ticks, 2), tier="cold")
    # Mid-move: the 02-05 partition also copied to cold (as a migration does before deleting).
    lake.cold.write(TICKS, _part("2019-02-05"), _shift_day(day_ticks, 1))
    client = LakeClient(lake=lake)
    tiers = {dict(l.partition)["date"]: l.tier.value for l in client.partitions("ticks")}
    assert tiers == {"2019-02-04": "hot", "2019-02-05": "warm", "2019-02-06": "cold"}
    all_rows = client.read("ticks", symbols=["EURUSD"])
    assert all_rows.height == 3 * day_ticks.height
    assert all_rows["ts"].is_sorted()
    n = client.sql("select count(*) n, count(distinct cast(ts as date)) d from ticks")
    assert (n["n"][0], n["d"][0]) == (3 * day_ticks.height, 3)
    # Tier hint: only what the cold tier holds.
    cold_only = client.read("ticks", tier="cold", columns=["ts"])
    assert cold_only.height == 2 * day_ticks.height


def test_client_filters_prune_and_project(lake_settings, day_ticks):
    lake = Lake(lake_settings)
    lake.write("ticks", _part("2019-02-04"), day_ticks, tier="hot")
    lake.write("ticks", _part("2019-02-05"), _shift_day(day_ticks, 1), tier="warm")
    client = LakeClient(lake=lake)
    window = client.read("ticks", symbols="EURUSD", start="2019-02-05T10:00:00Z", end="2019-02-05T11:00:00Z",
                         columns=["ts", "bid"])
    expected = _shift_day(day_ticks, 1).filter(
        (pl.col("ts").dt.hour() == 10)).select("ts", "bid")
    assert window.columns == ["ts", "bid"]
    assert window.equals(expected)
    assert client.read("ticks", symbols="XAUUSD").height == 0
    assert client.read("ticks", start="2019-02-05", end="2019-02-05").height == day_ticks.height
    lazy = client.read("ticks", symbols="EURUSD", lazy=True)
    assert isinstance(lazy, pl.LazyFrame)


@pytest.mark.parametrize("bad", ["../etc", "EUR/USD", "/abs", "EURUSD;drop table ticks", ""])
def test_names_are_validated_before_reaching_storage(lake_settings, bad):
    client = LakeClient(lake_settings)
    with pytest.raises(LakeValidationError):
        client.read("ticks", symbols=[bad])
    with pytest.raises(LakeValidationError):
        TICKS.partition(symbol=bad, date="2019-02-04")
    with pytest.raises(LakeValidationError):
        client.read(bad or "x;y")


def test_symbol_filter_is_bound_not_pasted(lake_settings, day_ticks):
    lake = Lake(lake_settings)
    lake.write("ticks", _part("2019-02-04"), day_ticks.head(10), tier="warm")
    client = LakeClient(lake=lake)
    got = client.sql("select count(*) n from ticks where symbol = ?", ["EURUSD' OR '1'='1"])
    assert got["n"][0] == 0


def test_manifest_detects_tampering(lake_settings, day_ticks):
    lake = Lake(lake_settings)
    info = lake.write("ticks", _part("2019-02-04"), day_ticks.head(100))
    data = open(info.uri, "rb").read()
    lake.hot._put_atomic(info.uri, data[:-8] + b"\0" * 8)
    ok, detail = lake.verify("ticks", _part("2019-02-04"))
    assert not ok and "manifest" in detail
    assert sha256(data) == info.sha256

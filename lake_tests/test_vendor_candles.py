"""The vendor's own candles as assets, and ``matches_vendor_candles`` on bars, through Dagster in-process:
bars from the real EURUSD day equal Dukascopy's BI5 candles through either feed; a minute that differs
fails the check and is listed; no stored candles is said, not hidden."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lake_assets.definitions import defs
from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource
from lake_resources.sources.dukascopy.candles import compare_bars
from lake_resources.storage import Lake

KEY = "2019-02-04|EURUSD"
PART = (("symbol", "EURUSD"), ("date", "2019-02-04"))
ALL = [*defs.assets, *defs.asset_checks]
SELECTION = ["raw_dukascopy", "ticks", "bars_1m", "bars_1h", "bars_1d",
             "vendor_candles_1m", "vendor_candles_1h", "vendor_candles_1d"]


def _run(home: Path, dukascopy: dict, selection=SELECTION):
    lake = LakeResource(home=str(home))
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake), "dukascopy": DukascopyResource(lake=lake, **dukascopy)}
    return dg.materialize(ALL, selection=selection, partition_key=KEY, resources=resources,
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def _vendor_check(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()
            if e.check_name == "matches_vendor_candles"}


@pytest.mark.parametrize("feed", ["api", "datafeed"])
def test_bars_equal_the_vendors_candles_through_either_feed(tmp_path, feed, datafeed_dir, api_layout_dir):
    dukascopy = ({"feed": "api", "api_url": api_layout_dir.as_uri()} if feed == "api"
                 else {"feed": "datafeed", "url": datafeed_dir.as_uri()})
    result = _run(tmp_path / "lake", dukascopy)
    assert result.success
    checks = _vendor_check(result)
    assert set(checks) == {"bars_1m", "bars_1h", "bars_1d"}
    for bars, periods in (("bars_1m", 1440), ("bars_1h", 24), ("bars_1d", 1)):
        assert checks[bars].passed, checks[bars].description
        assert checks[bars].metadata["compared"].value is True
        assert checks[bars].metadata["periods_compared"].value == periods
    candle_checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()
                     if e.asset_key.to_user_string().startswith("vendor_candles")}
    assert len(candle_checks) == 12 and all(candle_checks.values()), candle_checks  # schema, ts, dupes, checksum
    lake = Lake(LakeResource(home=str(tmp_path / "lake")).settings())
    candles = lake.read_partition("vendor_candles_1m", PART)
    assert candles.height == 1440 and candles["point"].unique().to_list() == [1e-05]
    # every candle response kept in the raw zone as received
    raw = "BID_candles_min_1." + ("json.zst" if feed == "api" else "bi5")
    assert lake.get_raw("dukascopy", "EURUSD", "2019-02-04", raw)


def test_a_differing_minute_fails_the_check_and_is_listed(tmp_path, api_layout_dir):
    root = tmp_path / "api"
    shutil.copytree(api_layout_dir, root)
    path = root / "candles/minute/EUR-USD/BID/2019/2/4"
    obj = json.loads(path.read_bytes())
    obj["highs"][600] += 3  # the vendor's 10:00 BID high 3 points higher (and every later high shifted back)
    obj["highs"][601] -= 3
    path.write_text(json.dumps(obj))
    result = _run(tmp_path / "lake", {"feed": "api", "api_url": root.as_uri()})
    check = _vendor_check(result)["bars_1m"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["ohlc_differences"].value == 1
    assert check.metadata["differing_ts"].value == ["2019-02-04 10:00:00+00:00"]
    assert "bid_high" in check.metadata["differing"].value


def test_without_stored_candles_the_check_says_not_compared(tmp_path, datafeed_dir):
    result = _run(tmp_path / "lake", {"feed": "datafeed", "url": datafeed_dir.as_uri()},
                  selection=["raw_dukascopy", "ticks", "bars_1m"])
    check = _vendor_check(result)["bars_1m"]
    assert check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["compared"].value is False and "not compared" in check.description


def test_compare_bars_volume_tolerance_and_flat_vendor_minutes(bars_1m):
    candles = bars_1m.select(
        "ts", "symbol", pl.lit(1e-05).alias("point"),
        *[pl.col(f"{s}_{f}") for s in ("bid", "ask") for f in ("open", "high", "low", "close", "volume")])
    assert compare_bars(bars_1m, candles, 1e-05).passed
    # a flat zero-volume vendor minute without a bar (BI5 writes those) is not a difference
    assert compare_bars(bars_1m.slice(1), candles.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(0.0).otherwise(pl.col("bid_volume")).alias("bid_volume"),
        pl.when(pl.int_range(pl.len()) == 0).then(0.0).otherwise(pl.col("ask_volume")).alias("ask_volume")),
        1e-05).passed
    off = candles.with_columns((pl.col("bid_volume") * 1.001).alias("bid_volume"))
    result = compare_bars(bars_1m, off, 1e-05)
    assert not result.passed and result.ohlc_differences == 0 and result.volume_differences == 1440

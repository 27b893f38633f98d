"""The benchmark harness runs end to end at tiny sizes and its baselines compute what ours computes.

Speed is never asserted here (these machines are shared and noisy): the tests check that every
figure is produced with a consistent ratio and target verdict, that the table and the JSON have
their promised shape, and that each baseline agrees with ours on real Dukascopy data, so a ratio
always compares the same work.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date

import numpy as np
import polars as pl
import pytest

from lake_assets.bench_dagster import dagster_backfill
from lake_resources.bench import FIGURE_IDS, BenchConfig, cli_bench, render_report, run_bench
from lake_resources.bench.bars import (
    check_same_bars,
    duckdb_query,
    numpy_arrays,
    numpy_minute_bars,
    pandas_frame,
    pandas_minute_bars,
)
from lake_resources.bench.codec import per_record_decode_day
from lake_resources.bench.core import machine_info
from lake_resources.catalog.instruments import decimal_factor
from lake_resources.sources.dukascopy import bi5
from lake_resources.storage import encode_parquet
from lake_resources.transforms.bars import minute_bars
from lake_resources.transforms.ticks import normalize_ticks

REAL_DAY = date(2019, 2, 4)
JSON_KEYS = {"figure", "ours", "baseline", "ratio", "target", "met"}


@pytest.fixture(scope="module")
def real_payloads(datafeed_dir) -> list[bytes | None]:
    paths = [datafeed_dir / bi5.hour_path("EURUSD", hour) for hour in bi5.day_hours(REAL_DAY)]
    return [p.read_bytes() if p.exists() else None for p in paths]


@pytest.fixture(scope="module")
def real_ticks(real_payloads) -> pl.DataFrame:
    return normalize_ticks(bi5.decode_day_ticks(real_payloads, REAL_DAY, decimal_factor("EURUSD")), "EURUSD")


# --- the baselines compute what ours computes, on the real EURUSD day --------------------------------
def test_per_record_baseline_decodes_the_real_day_to_our_frame(real_payloads, real_ticks):
    ticks = per_record_decode_day(real_payloads, REAL_DAY, decimal_factor("EURUSD"), "EURUSD")
    assert ticks.height == 136_741  # the fixture's tick count (README)
    assert ticks.equals(real_ticks)  # same columns, dtypes and values, so the ratio compares the same work


def test_bar_baselines_agree_with_ours_on_the_real_day(real_ticks, tmp_path):
    import duckdb

    ours = minute_bars(real_ticks)
    assert ours.height == 1440
    check_same_bars(ours, numpy_minute_bars(numpy_arrays(real_ticks)), "numpy")
    pandas_bars = pandas_minute_bars(pandas_frame(real_ticks))
    check_same_bars(ours, {**{c: pandas_bars[c].to_numpy() for c in pandas_bars.columns},
                           "ts": pandas_bars.index.as_unit("ns").asi8}, "pandas")
    path = tmp_path / "ticks.parquet"
    path.write_bytes(encode_parquet(real_ticks))
    query, params = duckdb_query([str(path)], "EURUSD")
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        bars = con.execute(query, params).pl()
    check_same_bars(ours, {**{c: bars[c].to_numpy() for c in bars.columns if c not in ("ts", "symbol")},
                           "ts": bars["ts"].dt.epoch("ns").to_numpy()}, "DuckDB")


def test_bar_equality_check_catches_a_different_bar(real_ticks):
    ours = minute_bars(real_ticks)
    other = numpy_minute_bars(numpy_arrays(real_ticks))
    other["high"] = other["high"].copy()
    other["high"][700] += 1e-5
    with pytest.raises(AssertionError, match="high differs"):
        check_same_bars(ours, other, "a perturbed copy")
    other = numpy_minute_bars(numpy_arrays(real_ticks.slice(0, real_ticks.height - 1)))
    with pytest.raises(AssertionError):
        check_same_bars(ours, other, "one tick short")


# --- the whole harness at tiny sizes --------------------------------------------------------------
TINY = BenchConfig(days=2, ticks_per_day=3_000, repeats=1, fast_repeats=1, slow_repeats=1, warmup=False,
                   scaling=True, budget_seconds=0.0, mode="tiny")


@pytest.fixture(scope="module")
def tiny_figures(tmp_path_factory) -> list:
    return run_bench(TINY, root=tmp_path_factory.mktemp("bench"), dagster_backfill=dagster_backfill)


def test_every_figure_is_measured_with_a_consistent_verdict(tiny_figures):
    assert [f.id for f in tiny_figures] == list(FIGURE_IDS)
    for f in tiny_figures:
        # (a tiny partition may raise the peak RSS by nothing measurable: 0 is a valid memory figure)
        assert math.isfinite(f.ours) and (f.ours > 0 or f.id == "peak_memory"), f.id
        assert math.isfinite(f.baseline) and f.baseline > 0, f.id
        assert math.isfinite(f.ratio) and f.ratio >= 0, f.id
        assert f.met == (f.ratio >= f.target_value if f.target_op == ">=" else f.ratio <= f.target_value), f.id
        # throughput figures: ratio = ours / baseline; cost figures: ratio = ours / baseline too
        assert f.ratio == pytest.approx(f.ours / f.baseline, rel=1e-9), f.id
        assert f.scaling is None or (f.scaling.days == TINY.days and f.scaling.ticks_n_days > f.scaling.ticks_one_day > 0)
    scaled = {f.id for f in tiny_figures if f.scaling is not None}
    assert scaled == {"decode_1core", "parquet_size", "bars_vs_pandas", "bars_parquet_vs_duckdb", "backtest_vs_loop",
                      "client_day", "sql_month", "dagster_backfill", "peak_memory"}


def test_the_report_shows_every_figure_and_marks_misses(tiny_figures):
    report = render_report(TINY, tiny_figures, machine_info(), elapsed=1.0)
    lines = report.splitlines()
    assert lines[0].startswith("Machine: ") and "cores" in lines[0] and "polars" in lines[0]
    start = lines.index("| figure | ours | baseline (same data, same run) | ratio | target | met |")
    assert lines[start + 1] == "|---|---|---|---|---|---|"
    rows = lines[start + 2 : start + 2 + len(FIGURE_IDS)]
    assert lines[start + 2 + len(FIGURE_IDS)] == ""  # the table ends after the last figure
    for figure, row in zip(tiny_figures, rows):
        assert row.endswith("| yes |" if figure.met else "| **MISSED** |"), row
        assert figure.target in row
    assert "Scaling of ours from 1 day to 2 trading days" in report
    missed = [f.id for f in tiny_figures if not f.met]
    assert report.rstrip().endswith(f"missed: {', '.join(missed)}." if missed else "meet their target.")


def test_cli_bench_prints_the_table_and_writes_json(tmp_path, capsys):
    import argparse

    out = tmp_path / "bench.json"
    args = argparse.Namespace(quick=True, json=str(out), only="parquet_size,backtest_vs_loop")
    assert cli_bench(args, config=dataclasses.replace(TINY, scaling=False)) == 0
    printed = capsys.readouterr().out
    assert "| figure | ours |" in printed and "tick Parquet size" in printed and "crossover backtest" in printed
    rows = json.loads(out.read_text())
    assert [r["id"] for r in rows] == ["parquet_size", "backtest_vs_loop"]
    for row in rows:
        assert JSON_KEYS <= set(row)
        assert isinstance(row["met"], bool) and isinstance(row["target"], str)
        assert row["ratio"] == pytest.approx(row["ours"] / row["baseline"])
        assert row["scaling"] is None
    size = rows[0]
    assert size["baseline"] == 20.0 and size["target"] == "≤ 0.5"
    assert size["met"] == (size["ratio"] <= 0.5)


def test_the_dagster_figure_without_the_dagster_layers_runner_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="dagster_backfill figure needs the Dagster layer's backfill runner"):
        run_bench(TINY, only={"parquet_size", "dagster_backfill"}, root=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no data was generated


def test_unknown_figure_id_is_refused(capsys):
    import argparse

    assert cli_bench(argparse.Namespace(quick=True, json=None, only="decode_1core,warp_drive")) == 2
    assert "warp_drive" in capsys.readouterr().err


def test_quick_and_full_sizes_are_what_the_issue_asks():
    full, quick = BenchConfig.full(), BenchConfig.quick()
    assert full.days >= 20 and full.ticks_per_day >= 1_000_000 and full.scaling
    assert len(full.trading_days) == 20 and all(d.weekday() < 5 for d in full.trading_days)
    assert quick.ticks_per_day < full.ticks_per_day and not quick.scaling
    assert np.all(np.diff([d.toordinal() for d in full.day_list]) == 1)  # calendar days, weekends included

"""The research layer as Dagster assets, materialized in-process on a real lake.

Sample Dukascopy files for EURUSD and XAUUSD, Friday 2019-02-01 to Tuesday 2019-02-05 (FX closes
from Friday 22:00 to Sunday 22:00 UTC: Saturday has no bars, Sunday a couple of hours), go through
the real ingest and bar assets; the research assets then run on that lake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver  # Dagster's own test helper

from lake_assets.definitions import defs
from lake_assets.research import assets as research_assets
from lake_assets.research.assets import BACKTEST_OUTPUTS, build_features_asset, register_strategy_runs
from lake_assets.research.sensors import strategy_specs_sensor
from lake_resources.client import LakeClient
from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource
from lake_resources.generate import generate
from lake_resources.research import backtest as bt
from lake_resources.research import features as fs
from lake_resources.research import heuristics as hx
from lake_resources.storage import encode_parquet

SYMBOLS = ("EURUSD", "XAUUSD")
FIRST, LAST = date(2019, 2, 1), date(2019, 2, 5)
UTC = timezone.utc
ASSETS = list(defs.assets)


class ResearchLake:
    def __init__(self, root: Path, landing: Path):
        self.home = root
        lake = LakeResource(home=str(root))
        self.resources = {
            "lake": lake,
            "io_manager": LakeIOManager(lake=lake),
            "dukascopy": DukascopyResource(feed="datafeed", url=landing.as_uri(), lake=lake),
        }
        self.lake = lake.lake()
        self.client = LakeClient(lake=self.lake)
        self.instance = dg.DagsterInstance.ephemeral()

    def materialize(self, selection, assets=None, **kwargs) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets or ASSETS, selection=selection, resources=self.resources, instance=self.instance, **kwargs
        )

    def bars(self, symbol: str, first: date, last: date) -> pl.DataFrame:
        return self.client.read("bars_1m", symbols=[symbol], start=first, end=last).sort("ts")

    def sha256_of(self, dataset: str, symbol: str, day: date) -> str:
        """A partition's checksum recomputed from its data (the lake's canonical encoding)."""
        frame = self.lake.read_partition(dataset, (("symbol", symbol), ("date", day.isoformat())))
        return hashlib.sha256(encode_parquet(frame)).hexdigest()


def range_tags(first: date, last: date, symbol: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": f"{first}|{symbol}",
        "dagster/asset_partition_range_end": f"{last}|{symbol}",
    }


@pytest.fixture(scope="module")
def research_lake(tmp_path_factory) -> ResearchLake:
    root = tmp_path_factory.mktemp("research")
    generate(root / "landing", SYMBOLS, FIRST, LAST, seed=3, ticks_per_day=4000)
    lake = ResearchLake(root / "lake", root / "landing" / "dukascopy")
    for symbol in SYMBOLS:
        result = lake.materialize(["raw_dukascopy", "ticks", "bars_1m"], tags=range_tags(FIRST, LAST, symbol))
        assert result.success
    return lake


def write_spec(directory: Path, name: str, body: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(body))
    return path


def strategies_config(directory: Path) -> dict:
    return {"ops": {"heuristic_defs": {"config": {"directory": str(directory)}}}}


def materialization(result: dg.ExecuteInProcessResult, asset: str, partition: str | None = None) -> dg.AssetMaterialization:
    found = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey(asset) and (partition is None or e.materialization.partition == partition)
    ]
    assert len(found) == 1, f"{asset} {partition}: {len(found)} materializations"
    return found[0]


def features_at_once(lake: ResearchLake, symbol: str, day: date) -> pl.DataFrame:
    """Features of ``day`` computed over every stored bar up to it in one pass (no tail logic)."""
    everything = lake.bars(symbol, FIRST, day)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return fs.compute_features(everything).filter(pl.col("ts") >= start)


# --- features ------------------------------------------------------------------------------------


def test_monday_features_warm_up_on_friday_and_sunday_with_lineage(research_lake: ResearchLake) -> None:
    lake, monday, key = research_lake, date(2019, 2, 4), "2019-02-04|EURUSD"
    result = lake.materialize(["features"], partition_key=key)
    assert result.success
    stored = lake.client.read("features", symbols=["EURUSD"], start=monday, end=monday)

    # Saturday has no bars and Sunday fewer than the lookback, so the history tail spans Friday + Sunday.
    friday, sunday = lake.bars("EURUSD", FIRST, FIRST), lake.bars("EURUSD", monday - timedelta(1), monday - timedelta(1))
    assert lake.bars("EURUSD", date(2019, 2, 2), date(2019, 2, 2)).height == 0
    assert 0 < sunday.height < fs.max_lookback()
    tail = fs.tail_for_next_day(pl.concat([friday, sunday]))
    expected = fs.compute_features(lake.bars("EURUSD", monday, monday), tail)
    assert stored.drop("input_versions").equals(expected)
    # ... which is what computing Friday to Monday in one go gives: no reset at the day boundaries.
    assert stored.drop("input_versions").equals(features_at_once(lake, "EURUSD", monday))

    # Lineage: the feature version and the SHA-256 of every bars partition read, in the data itself.
    inputs = {f"bars_1m/symbol=EURUSD/date={d}": lake.sha256_of("bars_1m", "EURUSD", d)
              for d in (FIRST, date(2019, 2, 3), monday)}
    assert stored["feature_version"].unique().to_list() == [fs.FEATURE_SET_VERSION]
    assert [json.loads(v) for v in stored["input_versions"].unique()] == [inputs]
    event = materialization(result, "features", key)
    assert event.tags["dagster/code_version"] == fs.FEATURE_SET_VERSION
    assert event.metadata["lineage/inputs"].value == inputs
    assert event.metadata["history_days"].value == "2019-02-01, 2019-02-03"
    assert event.tags["dagster/data_version"] == event.metadata["lineage/data_version"].value


def test_a_range_run_carries_history_from_day_to_day(research_lake: ResearchLake) -> None:
    lake = research_lake
    result = lake.materialize(["features"], tags=range_tags(date(2019, 2, 3), LAST, "XAUUSD"))
    assert result.success
    for day in (date(2019, 2, 3), date(2019, 2, 4), LAST):
        stored = lake.client.read("features", symbols=["XAUUSD"], start=day, end=day)
        assert stored.height == lake.bars("XAUUSD", day, day).height > 0
        assert stored.drop("input_versions").equals(features_at_once(lake, "XAUUSD", day)), day


def test_changing_a_feature_definition_makes_stored_features_stale(research_lake: ResearchLake, monkeypatch) -> None:
    lake, key = research_lake, "2019-02-05|EURUSD"
    assert research_assets.features.code_versions_by_key[dg.AssetKey("features")] == fs.FEATURE_SET_VERSION
    assert lake.materialize(["features"], partition_key=key).success
    feature_key = dg.AssetKey("features")
    assert get_stale_status_resolver(lake.instance, ASSETS).get_status(feature_key, key) == StaleStatus.FRESH

    bumped = dict(fs.FEATURES)
    bumped["rsi"] = replace(fs.FEATURES["rsi"], version=fs.FEATURES["rsi"].version + 1)
    monkeypatch.setattr(fs, "FEATURES", bumped)
    new_version = fs._feature_set_version()
    assert new_version != fs.FEATURE_SET_VERSION
    changed = [a for a in ASSETS if feature_key not in a.keys] + [build_features_asset(new_version)]
    resolver = get_stale_status_resolver(lake.instance, changed)
    assert resolver.get_status(feature_key, key) == StaleStatus.STALE
    assert "code version" in " ".join(c.reason for c in resolver.get_stale_causes(feature_key, key))


# --- heuristics registry ---------------------------------------------------------------------------


def test_heuristic_defs_keep_every_version_ever_seen(tmp_path: Path) -> None:
    lake = ResearchLake(tmp_path / "lake", tmp_path / "no-landing")
    specs = tmp_path / "strategies"
    cross = {"name": "cross", "version": 1, "kind": "ma_crossover", "params": {"fast": 5, "slow": 20}}
    write_spec(specs, "cross", cross)
    write_spec(specs, "sweep", {"name": "sweep", "version": 1, "kind": "breakout", "grid": {"window": [10, 30]}})
    first_runs = [r for s in hx.load_specs(specs) for r in hx.expand_grid(s)]
    assert lake.materialize(["heuristic_defs"], run_config=strategies_config(specs)).success
    table = lake.client.read("heuristic_defs")
    assert sorted(table["id"]) == sorted(r.spec_id for r in first_runs)
    assert table["json_spec"].to_list() == [r.to_json() for r in first_runs]

    write_spec(specs, "cross", {**cross, "params": {"fast": 5, "slow": 40}})  # same name and version, new logic
    (specs / "sweep.json").unlink()
    new_run = hx.expand_grid(hx.load_specs(specs)[0])[0]
    assert lake.materialize(["heuristic_defs"], run_config=strategies_config(specs)).success
    again = lake.client.read("heuristic_defs")
    assert sorted(again["id"]) == sorted([*(r.spec_id for r in first_runs), new_run.spec_id])
    kept = again.filter(pl.col("id").is_in(table["id"].to_list())).sort("id")
    assert kept.equals(table.sort("id"))  # earlier versions untouched, with their first added_at
    assert again.filter(pl.col("id") == new_run.spec_id)["added_at"][0] > table["added_at"].max()
    assert set(lake.instance.get_dynamic_partitions("strategy_runs")) == set(again["id"])


def test_an_invalid_spec_fails_naming_the_file_and_the_field(tmp_path: Path) -> None:
    lake = ResearchLake(tmp_path / "lake", tmp_path / "no-landing")
    specs = tmp_path / "strategies"
    bad = write_spec(specs, "bad", {"name": "bad", "version": 1, "kind": "ma_crossover", "params": {"fast": "five", "slow": 20}})
    result = lake.materialize(["heuristic_defs"], run_config=strategies_config(specs), raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert str(bad) in message and "params.fast" in message
    assert lake.client.partitions("heuristic_defs") == []  # nothing stored


def test_the_sensor_registers_new_runs_once(tmp_path: Path, monkeypatch) -> None:
    specs = tmp_path / "strategies"
    write_spec(specs, "sweep", {"name": "sweep", "version": 1, "kind": "ma_crossover", "grid": {"fast": [3, 5], "slow": [20]}})
    monkeypatch.setenv("LAKE_STRATEGIES", str(specs))
    instance = dg.DagsterInstance.ephemeral()
    result = strategy_specs_sensor(dg.build_sensor_context(instance=instance))
    ids = [r.spec_id for r in hx.expand_grid(hx.load_specs(specs)[0])]
    assert [req.partition_keys for req in result.dynamic_partitions_requests] == [ids]
    assert len(result.run_requests) == 1
    again = strategy_specs_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert isinstance(again, dg.SkipReason)
    write_spec(specs, "broken", {"name": "broken", "version": 0, "kind": "ma_crossover"})
    broken = strategy_specs_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert "broken.json: version" in broken.skip_reason.skip_message and not broken.run_requests


# --- backtests and the leaderboard ----------------------------------------------------------------


def backtest(lake: ResearchLake, specs: Path, run_id: str, start: str, end: str) -> dg.ExecuteInProcessResult:
    config = {"ops": {"backtests": {"config": {"start": start, "end": end}}}}
    return lake.materialize(list(BACKTEST_OUTPUTS), partition_key=run_id, run_config=config)


def test_a_backtest_run_stores_trades_equity_summary_and_matches(research_lake: ResearchLake, tmp_path: Path) -> None:
    lake, specs = research_lake, tmp_path / "strategies"
    write_spec(specs, "cross", {"name": "cross", "version": 1, "kind": "ma_crossover", "params": {"fast": 5, "slow": 30}})
    (run_id,) = register_strategy_runs(lake.instance, specs)
    assert run_id in lake.instance.get_dynamic_partitions("strategy_runs")
    assert lake.materialize(["heuristic_defs"], run_config=strategies_config(specs)).success
    result = backtest(lake, specs, run_id, "2019-02-04", "2019-02-05")
    assert result.success

    run = hx.expand_grid(hx.load_specs(specs)[0])[0]
    # every table is partitioned by the run key and holds it in `run`
    stored = {name: lake.lake.read_partition(name, (("run", run_id),)) for name in BACKTEST_OUTPUTS}
    for name, frame in stored.items():
        assert frame.height > 0 and frame["run"].unique().to_list() == [run_id], name
    summary = stored["backtest_runs"].sort("symbol")
    assert summary["symbol"].to_list() == list(SYMBOLS)
    for row in summary.iter_rows(named=True):
        symbol = row["symbol"]
        bars = lake.bars(symbol, date(2019, 2, 4), LAST)
        detection = hx.detect(run, bars)
        expected = bt.backtest_bars(bars, detection.positions["position"])
        for metric, value in expected.metrics.items():
            assert row[metric] == value or (math.isnan(row[metric]) and math.isnan(value)), metric
        assert (row["spec_id"], row["bars"], row["data_start"], row["data_end"]) == (
            run_id, bars.height, bars["ts"][0], bars["ts"][-1])
        assert json.loads(row["input_versions"]) == {
            f"bars_1m/symbol={symbol}/date={d}": lake.sha256_of("bars_1m", symbol, d) for d in (date(2019, 2, 4), LAST)
        }
        trades = stored["backtest_trades"].filter(pl.col("symbol") == symbol).sort("entry_ts")
        assert trades.select(expected.trades.columns).equals(expected.trades)
        equity = stored["backtest_equity"].filter(pl.col("symbol") == symbol).sort("ts")
        assert equity.select(expected.equity.columns).equals(expected.equity)
        matches = stored["signal_matches"].filter(pl.col("symbol") == symbol).sort("ts")
        assert matches.select(detection.matches.columns).equals(detection.matches)

    plot = materialization(result, "backtest_equity", run_id).metadata["equity_curve"].value
    prefix = "![equity curve](data:image/png;base64,"
    assert plot.startswith(prefix) and base64.b64decode(plot[len(prefix):-1])[:8] == b"\x89PNG\r\n\x1a\n"
    table = materialization(result, "backtest_runs", run_id).metadata["summary"].value
    assert [r.data["symbol"] for r in table.records] == list(SYMBOLS)


def naive_scores(matches: list[datetime], labels: list[datetime], tolerance: timedelta) -> tuple[float, float]:
    """Precision and recall by brute force over all pairs."""
    correct = sum(any(abs(m - l) <= tolerance for l in labels) for m in matches)
    found = sum(any(abs(m - l) <= tolerance for m in matches) for l in labels)
    return correct / len(matches), found / len(labels)


def test_leaderboard_ranks_every_run_by_sharpe_with_label_scores(research_lake: ResearchLake, tmp_path: Path) -> None:
    lake, specs = research_lake, tmp_path / "strategies"
    write_spec(specs, "sweep", {"name": "sweep", "version": 1, "kind": "ma_crossover", "grid": {"fast": [5, 10], "slow": [60]}})
    run_ids = register_strategy_runs(lake.instance, specs)
    assert lake.materialize(["heuristic_defs"], run_config=strategies_config(specs)).success
    # Both sweep points in one run (a partition range): each is stored as its own partition.
    config = {"ops": {"backtests": {"config": {"start": "2019-02-01", "end": "2019-02-05"}}}}
    tags = {"dagster/asset_partition_range_start": run_ids[0], "dagster/asset_partition_range_end": run_ids[1]}
    assert lake.materialize(list(BACKTEST_OUTPUTS), tags=tags, run_config=config).success
    for run_id in run_ids:
        assert lake.lake.read_partition("backtest_runs", (("run", run_id),))["run"].to_list() == [run_id] * 2

    # Labelled events for EURUSD: near (2 min after) the first three matches of the first run, plus
    # events where that run found nothing.
    stored_matches = lake.lake.read_partition("signal_matches", (("run", run_ids[0]),))
    matches = stored_matches.filter(pl.col("symbol") == "EURUSD").sort("ts")["ts"].to_list()
    labels = [m + timedelta(minutes=2) for m in matches[:3]] + [datetime(2019, 2, 2, 12, tzinfo=UTC), datetime(2019, 2, 3, 12, tzinfo=UTC)]
    (specs / "labels").mkdir()
    pl.DataFrame({"ts": [t.isoformat() for t in labels], "symbol": ["EURUSD"] * len(labels)}).write_csv(specs / "labels" / "sweep.csv")

    config = {"ops": {"leaderboard": {"config": {"labels_directory": str(specs / "labels")}}}}
    result = lake.materialize(["leaderboard"], run_config=config)
    assert result.success
    board = lake.client.sql("select * from leaderboard order by rank")
    runs = lake.client.read("backtest_runs")  # every run stored, including other tests' runs
    assert board.height == runs.height and board["rank"].to_list() == list(range(1, runs.height + 1))
    sharpe = runs["sharpe"].fill_nan(None)
    assert board["sharpe"].fill_nan(None).to_list() == sharpe.sort(descending=True, nulls_last=True).to_list()
    assert {"total_return", "max_drawdown", "hit_rate", "trade_count", "precision", "recall", "f1"} <= set(board.columns)

    scored = board.filter(pl.col("f1_basis") == "labels")
    assert set(scored["spec_id"]) == set(run_ids) and scored["symbol"].unique().to_list() == ["EURUSD"]
    in_range = [l for l in labels if l >= runs.filter(pl.col("spec_id") == run_ids[0])["data_start"].min()]
    precision, recall = naive_scores(matches, in_range, timedelta(minutes=5))
    row = board.filter((pl.col("spec_id") == run_ids[0]) & (pl.col("symbol") == "EURUSD")).row(0, named=True)
    assert (row["precision"], row["recall"]) == pytest.approx((precision, recall))
    assert row["labels"] == len(in_range) and 0 < recall < 1
    shown = materialization(result, "leaderboard").metadata["leaderboard"].value.records
    assert [(r.data["rank"], r.data["spec_id"], r.data["symbol"]) for r in shown] == board.select("rank", "spec_id", "symbol").rows()

    by_drawdown = lake.materialize(["leaderboard"], run_config={"ops": {"leaderboard": {"config": {"metric": "max_drawdown"}}}})
    assert by_drawdown.success
    ranked = lake.client.read("leaderboard").sort("rank")["max_drawdown"]
    assert ranked.to_list() == runs["max_drawdown"].sort().to_list()  # lower drawdown ranks first


def test_bad_labels_files_are_named_with_the_column_and_row(tmp_path: Path) -> None:
    from lake_assets.research.assets import load_labels
    from lake_resources.catalog.validation import LakeValidationError

    path = tmp_path / "sweep.csv"
    path.write_text("time,symbol\n2019-02-04T10:00:00Z,EURUSD\n")
    with pytest.raises(LakeValidationError, match=r"sweep\.csv: ts: missing column"):
        load_labels(path)
    path.write_text("ts,symbol\n2019-02-04T10:00:00Z,EURUSD\nyesterday,EURUSD\n")
    with pytest.raises(LakeValidationError, match=r"sweep\.csv: ts: row 2: not an ISO 8601 time: 'yesterday'"):
        load_labels(path)
    path.write_text("ts,symbol\n2019-02-04T10:00:00+01:00,EURUSD\n2019-02-04 10:00:00,EUR/USD\n")
    with pytest.raises(LakeValidationError, match=r"sweep\.csv: symbol: row 2: invalid symbol 'EUR/USD'"):
        load_labels(path)
    path.write_text("ts,symbol\n2019-02-04T10:00:00+01:00,EURUSD\n2019-02-04 10:00:00,eurusd\n")
    labels = load_labels(path)  # offsets converted to UTC, no offset read as UTC, symbols normalized
    assert labels["ts"].to_list() == [datetime(2019, 2, 4, 9, tzinfo=UTC), datetime(2019, 2, 4, 10, tzinfo=UTC)]
    assert labels["symbol"].to_list() == ["EURUSD", "EURUSD"]


def test_each_run_partition_previews_its_own_rows(research_lake: ResearchLake, tmp_path: Path) -> None:
    """Two strategy runs (a Bollinger and an MA crossover) backtested in one run: each run partition's
    materialization previews its own rows (the preview used to be the first partition's, so the MA
    crossover showed Bollinger rows)."""
    lake, specs = research_lake, tmp_path / "strategies"
    write_spec(specs, "boll", {"name": "boll", "version": 1, "kind": "bollinger_mean_reversion",
                               "params": {"window": 20, "num_std": 2.0}})
    write_spec(specs, "cross", {"name": "cross", "version": 1, "kind": "ma_crossover", "params": {"fast": 5, "slow": 30}})
    run_ids = sorted(register_strategy_runs(lake.instance, specs))
    assert len(run_ids) == 2
    assert lake.materialize(["heuristic_defs"], run_config=strategies_config(specs)).success
    keys = lake.instance.get_dynamic_partitions("strategy_runs")
    first, last = sorted(run_ids, key=keys.index)
    config = {"ops": {"backtests": {"config": {"start": "2019-02-04", "end": "2019-02-05"}}}}
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    result = lake.materialize(list(BACKTEST_OUTPUTS), tags=tags, run_config=config)
    assert result.success
    for name in ("backtest_runs", "backtest_trades", "signal_matches"):
        for run_id in run_ids:
            other = next(r for r in run_ids if r != run_id)
            preview = materialization(result, name, run_id).metadata["preview"].value
            assert run_id in preview and other not in preview, (name, run_id, preview[:300])


def test_leaderboard_f1_is_defined_for_every_run_without_labels(research_lake: ResearchLake, tmp_path: Path) -> None:
    """Without any labels file every leaderboard row has an F1 (it was null for every row): the outcome
    F1 stored with the run (signals against later price moves, ``f1_basis`` "outcome"), recomputed
    here from the stored bars, positions and trades."""
    from lake_resources.research.outcomes import outcome_scores

    lake, specs = research_lake, tmp_path / "strategies"
    write_spec(specs, "donch", {"name": "donch", "version": 1, "kind": "breakout", "params": {"window": 60, "exit_window": 30}})
    (run_id,) = register_strategy_runs(lake.instance, specs)
    assert lake.materialize(["heuristic_defs"], run_config=strategies_config(specs)).success
    assert backtest(lake, specs, run_id, "2019-02-04", "2019-02-05").success
    config = {"ops": {"leaderboard": {"config": {"labels_directory": str(tmp_path / "no-labels")}}}}
    assert lake.materialize(["leaderboard"], run_config=config).success
    board = lake.client.read("leaderboard")
    assert board["f1"].null_count() == 0 and set(board["f1_basis"]) == {"outcome"}
    run = hx.expand_grid(hx.load_specs(specs)[0])[0]
    trades = lake.lake.read_partition("backtest_trades", (("run", run_id),))
    for symbol in SYMBOLS:
        bars = lake.bars(symbol, date(2019, 2, 4), LAST)
        positions = hx.detect(run, bars).positions["position"]
        expected = outcome_scores(bars, positions, trades.filter(pl.col("symbol") == symbol).sort("entry_ts"))
        row = board.filter((pl.col("spec_id") == run_id) & (pl.col("symbol") == symbol)).row(0, named=True)
        assert row["f1"] == pytest.approx(expected["outcome_f1"]) and expected["outcome_opportunities"] > 0

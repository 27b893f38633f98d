"""The ``backtests`` multi-asset: one strategy run backtested per partition (runs, trades, equity, matches)."""

import json
import os
from typing import Optional

import dagster as dg
import polars as pl

from lake_assets.metadata import OWNERS, dataset_description, dataset_kinds, dataset_metadata
from lake_assets.partitions import strategy_runs
from lake_assets.research.assets.common import (
    BACKTEST_CODE_VERSION,
    BACKTEST_END_ENV,
    BACKTEST_OUTPUTS,
    BACKTEST_START_ENV,
    SUMMARY_COLUMNS,
    _utc_now,
    table_metadata,
)
from lake_assets.research.assets.registry import load_runs, stored_table, strategies_directory
from lake_assets.research.lineage import (
    lineage_digest,
    stored_partitions,
    versions_json,
)
from lake_assets.research.plots import equity_png, equity_sparkline_markdown, png_markdown
from lake_resources.catalog.datasets import dataset_spec
from lake_resources.catalog.validation import validate_symbol
from lake_resources.client import LakeClient
from lake_resources.dagster_io import LakeResource
from lake_resources.research import backtest as bt
from lake_resources.research import heuristics as hx
from lake_resources.research.outcomes import outcome_scores


# ----------------------------------------------------------------------------------------------
# Backtests
# ----------------------------------------------------------------------------------------------
class BacktestConfig(dg.Config):
    start: Optional[str] = None  # YYYY-MM-DD or ISO 8601; default LAKE_BACKTEST_START, else all stored days
    end: Optional[str] = None  # inclusive for a date; default LAKE_BACKTEST_END, else all stored days
    symbols: Optional[list[str]] = None  # default: the spec's symbols, else every symbol with bars
    commission_bps: float = 0.0
    commission_per_unit: float = 0.0


def run_from_json(text: str, source: str) -> hx.RunSpec:
    d = json.loads(text)
    return hx.RunSpec(
        spec_id=d["id"],
        name=d["name"],
        version=int(d["version"]),
        kind=d["kind"],
        params=d["params"],
        symbols=tuple(d["symbols"]) if d.get("symbols") is not None else None,
        bar_interval=d["bar_interval"],
        source=source,
    )


def resolve_run(lake, run_id: str) -> hx.RunSpec:
    """The run's definition from ``heuristic_defs``; else from the spec files (a run id is a hash of
    its definition, so both agree); else a failure saying what to do."""
    stored = stored_table(lake, "heuristic_defs")
    if stored is not None:
        hit = stored.filter(pl.col("id") == run_id)
        if hit.height:
            return run_from_json(hit["json_spec"][0], f"heuristic_defs:{run_id}")
    directory = strategies_directory()
    for run in load_runs(directory) if directory.is_dir() else []:
        if run.spec_id == run_id:
            return run
    raise dg.Failure(
        description=f"strategy run {run_id!r} is neither in heuristic_defs nor in the specs of {directory}; "
        "materialize heuristic_defs (or restore the spec) first"
    )


def _env_or(value: str | None, env: str) -> str | None:
    return value or os.environ.get(env) or None


def backtest_one(
    lake, run: hx.RunSpec, run_key: str, config: BacktestConfig, log=None
) -> tuple[dict[str, pl.DataFrame], list[dict], dict[str, pl.DataFrame]]:
    """Backtest ``run`` on each symbol; returns the output frames, summary rows and equity curves."""
    client = LakeClient(lake=lake)
    dataset = f"bars_{run.bar_interval}"
    spec = dataset_spec(dataset)
    start, end = _env_or(config.start, BACKTEST_START_ENV), _env_or(config.end, BACKTEST_END_ENV)
    if config.symbols:
        symbols = [validate_symbol(s) for s in config.symbols]
    elif run.symbols:
        symbols = list(run.symbols)
    else:
        symbols = sorted({dict(l.partition)["symbol"] for l in client.partitions(dataset)})
    frames: dict[str, list[pl.DataFrame]] = {name: [] for name in BACKTEST_OUTPUTS if name != "backtest_runs"}
    summaries, curves = [], {}
    for symbol in symbols:
        stored = stored_partitions(lake, spec, client.partitions(dataset, symbols=[symbol], start=start, end=end))
        bars = client.read(dataset, symbols=[symbol], start=start, end=end).sort("ts")
        if bars.height == 0:
            if log:
                log.info(f"{run_key}: no {dataset} rows for {symbol} in {start or 'first'} → {end or 'last'}: skipped")
            continue
        detection = hx.detect(run, bars)
        result = bt.backtest_bars(
            bars,
            detection.positions["position"],
            commission_bps=config.commission_bps,
            commission_per_unit=config.commission_per_unit,
        )
        tag = [pl.lit(run_key).alias("run")]
        frames["backtest_trades"].append(result.trades.with_columns(*tag, pl.lit(run.spec_id).alias("spec_id")))
        frames["backtest_equity"].append(result.equity.with_columns(pl.lit(symbol).alias("symbol"), *tag))
        frames["signal_matches"].append(detection.matches.with_columns(*tag))
        capital = result.metrics["initial_capital"]
        curves[symbol] = result.equity.select("ts", ((pl.col("equity") / capital - 1.0) * 100.0).alias("return_pct"))
        inputs = versions_json(stored)
        summaries.append(
            {
                "run": run_key,
                "spec_id": run.spec_id,
                "name": run.name,
                "version": run.version,
                "kind": run.kind,
                "bar_interval": run.bar_interval,
                "params": json.dumps(run.params, sort_keys=True),
                "symbol": symbol,
                "data_start": bars["ts"][0],
                "data_end": bars["ts"][-1],
                "bars": bars.height,
                "matches": detection.matches.height,
                **{k: float(v) for k, v in result.metrics.items()},
                # signals scored against what the market then did (definition: research/outcomes.py)
                **outcome_scores(bars, detection.positions["position"], result.trades, config.commission_bps),
                "commission_bps": config.commission_bps,
                "commission_per_unit": config.commission_per_unit,
                "input_dataset": dataset,
                "input_partitions": len(stored),
                "input_digest": lineage_digest(dataset, inputs),
                "input_versions": inputs,
                "code_version": BACKTEST_CODE_VERSION,
                "materialized_at": _utc_now(),
            }
        )
        if log:
            log.info(
                f"{run_key} {symbol}: {bars.height} bars, {result.trades.height} trades, "
                f"{detection.matches.height} matches, sharpe {result.metrics['sharpe']:.3g}"
            )
    if not summaries:
        raise dg.Failure(
            description=f"backtest {run_key}: no {dataset} rows for {', '.join(symbols) or 'any symbol'} "
            f"in {start or 'the first day'} → {end or 'the last day'}; materialize {dataset} first"
        )
    out = {name: pl.concat(parts, how="diagonal_relaxed") for name, parts in frames.items()}
    return out, summaries, curves


def summary_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows).with_columns(
        pl.col("data_start", "data_end").cast(bt.TS_DTYPE),
        pl.col("materialized_at").cast(bt.TS_DTYPE),
        pl.col("bars", "matches", "version", "input_partitions", "trade_count").cast(pl.Int64),
    )


#: A new strategy run (a newly added partition) is backtested once, as soon as the registry exists.
#: Bars are ignored: a run reads whatever bars are stored, and new bars do not re-run old backtests.
BACKTEST_AUTOMATION = (
    dg.AutomationCondition.on_missing() & ~dg.AutomationCondition.in_progress()
).ignore(dg.AssetSelection.assets(*(f"bars_{i}" for i in hx.BAR_INTERVALS))).with_label("new strategy run")
#: Re-rank whenever a backtest is stored; a run that is missing or failed does not hold the rest back.
LEADERBOARD_AUTOMATION = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())


@dg.multi_asset(
    name="backtests",
    outs={
        name: dg.AssetOut(
            metadata=dataset_metadata(name),
            kinds=dataset_kinds(name),
            owners=OWNERS,
            code_version=BACKTEST_CODE_VERSION,
            description=dataset_description(name),
            automation_condition=BACKTEST_AUTOMATION,
        )
        for name in BACKTEST_OUTPUTS
    },
    partitions_def=strategy_runs,
    backfill_policy=dg.BackfillPolicy.single_run(),  # a sweep is one run, not one per grid point
    deps=[
        dg.AssetDep("heuristic_defs"),
        *(dg.AssetDep(f"bars_{i}", partition_mapping=dg.AllPartitionMapping()) for i in hx.BAR_INTERVALS),
    ],
    group_name="research",
    pool="warm_writer",
)
def backtests(context: dg.AssetExecutionContext, config: BacktestConfig, lake: LakeResource):
    """Backtest each strategy run on bars read through the lake; store trades, equity, summary, matches."""
    store = lake.lake()
    collected: dict[str, list[pl.DataFrame]] = {name: [] for name in BACKTEST_OUTPUTS}
    for key in context.partition_keys:
        run = resolve_run(store, key)
        out, rows, curves = backtest_one(store, run, key, config, context.log)
        summary = summary_frame(rows)
        for name, frame in {**out, "backtest_runs": summary}.items():
            collected[name].append(frame)
        title = f"{run.spec_id} ({run.kind} {json.dumps(run.params, sort_keys=True)})"
        context.add_asset_metadata(
            {
                "spec": dg.MetadataValue.json(json.loads(run.to_json())),
                "summary": table_metadata(summary, ["symbol", "bars", "matches", *SUMMARY_COLUMNS, "data_start", "data_end"]),
                "input_dataset": rows[0]["input_dataset"],
                "input_partitions": int(summary["input_partitions"].sum()),
                "input_digest": lineage_digest(key, "".join(summary["input_digest"].to_list())),
            },
            asset_key="backtest_runs",
            partition_key=key,
        )
        context.add_asset_metadata(
            {
                # inline (under the UI's 1000-character limit for markdown); the full plot behind its link
                "equity": dg.MetadataValue.md(equity_sparkline_markdown(curves)),
                "equity_curve": dg.MetadataValue.md(png_markdown(equity_png(curves, title), "equity curve")),
                **{f"return_pct/{symbol}": dg.MetadataValue.float(float(curve["return_pct"][-1]))
                   for symbol, curve in sorted(curves.items()) if curve.height},
            },
            asset_key="backtest_equity",
            partition_key=key,
        )
    for name in BACKTEST_OUTPUTS:
        yield dg.Output(pl.concat(collected[name], how="diagonal_relaxed"), output_name=name)

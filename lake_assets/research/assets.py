"""Research assets: the feature store, the heuristics registry, backtests and the leaderboard.

The transformations are the plain functions of ``lake_resources.research``; this module wires them to
partitions, the lake and lineage.

- ``features`` (date x symbol): a day's minute bars plus a history tail from the days before it (a
  ``-1..0`` day partition mapping, so the UI shows the dependency; when the previous day has no bars
  or too few, the tail walks back through the lake over at most :data:`HISTORY_SEARCH_DAYS` days), so
  indicators do not reset at midnight. ``code_version`` is the feature set's version; each partition
  stores and reports the SHA-256 of every bars partition it read, and a content-derived data version.
- ``heuristic_defs``: every run (spec version or sweep point) ever seen in ``strategies/``, with the
  time it was first seen; registers each run id as a ``strategy_runs`` partition.
- ``backtests`` (``strategy_runs``): one backtest per run over a date range and symbols, writing
  ``backtest_runs`` (summary and lineage), ``backtest_trades``, ``backtest_equity`` and
  ``signal_matches``, each row carrying the run id in ``run``.
- ``leaderboard``: every stored run ranked by a metric (Sharpe by default), with precision/recall/F1
  for heuristics that have labelled events.
"""


import json
import math
import os
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import dagster as dg
import polars as pl

from lake_assets.metadata import OWNERS, daily_dataset_asset, dataset_description, dataset_kinds, dataset_metadata
from lake_assets.partitions import split_key, strategy_runs
from lake_assets.research.lineage import (
    StoredPartition,
    day_index,
    history_days,
    lineage_digest,
    stored_partitions,
    versions_json,
)
from lake_assets.research.plots import equity_png, equity_sparkline_markdown, png_markdown
from lake_resources.client import LakeClient
from lake_resources.datasets import dataset_spec
from lake_resources.research import backtest as bt
from lake_resources.research import features as fs
from lake_resources.research import heuristics as hx
from lake_resources.research import leaderboard as lb
from lake_resources.research.outcomes import outcome_scores
from lake_resources.resources import ALLOW_MISSING_KEY, LakeResource, PartitionInputs, PartitionStream
from lake_resources.storage import PartitionNotFound
from lake_resources.validation import LakeValidationError, validate_symbol

REPO_ROOT = Path(__file__).resolve().parents[2]
STRATEGIES_ENV = "LAKE_STRATEGIES"
BACKTEST_START_ENV = "LAKE_BACKTEST_START"
BACKTEST_END_ENV = "LAKE_BACKTEST_END"
#: How far back (calendar days) the features look for history before a day: covers weekends and holidays.
HISTORY_SEARCH_DAYS = 7
#: Bump when the backtest wiring (what is read, how results are stored) changes.
BACKTEST_CODE_VERSION = "1"
LEADERBOARD_CODE_VERSION = "1"
BACKTEST_OUTPUTS = ("backtest_runs", "backtest_trades", "backtest_equity", "signal_matches")
#: Summary columns shown in the UI tables (the stored tables have more).
SUMMARY_COLUMNS = ("sharpe", "sortino", "total_return", "max_drawdown", "hit_rate", "trade_count", "turnover")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _cell(value):
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None  # 6 significant digits on screen
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def table_metadata(frame: pl.DataFrame, columns: list[str], max_rows: int = 30) -> dg.TableMetadataValue:
    """The first ``max_rows`` rows as a table the UI shows inline (NaN as empty, times as ISO text)."""
    columns = [c for c in columns if c in frame.columns]
    types = {c: "float" if frame.schema[c].is_float() else "int" if frame.schema[c].is_integer() else "string" for c in columns}
    records = [dg.TableRecord({c: _cell(v) for c, v in zip(columns, row)}) for row in frame.select(columns).head(max_rows).iter_rows()]
    return dg.MetadataValue.table(records, schema=dg.TableSchema([dg.TableColumn(c, types[c]) for c in columns]))


def _output(value, data_version: dg.DataVersion | None = None, **kwargs) -> dg.Output:
    """``dg.Output``; its ``data_version`` parameter is beta in Dagster 1.13 (used deliberately)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(value, data_version=data_version, **kwargs)


# ----------------------------------------------------------------------------------------------
# Feature store
# ----------------------------------------------------------------------------------------------
#: A features partition reads its own day and the day before of the same symbol.
with warnings.catch_warnings():  # beta APIs, used deliberately: no warning on every import
    warnings.simplefilter("ignore", dg.BetaWarning)
    SAME_AND_PREVIOUS_DAY = dg.MultiPartitionMapping(
        {
            "date": dg.DimensionPartitionMapping(
                "date",
                dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True),
            ),
            "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping()),
        }
    )


def feature_registry_markdown() -> str:
    lines = ["| feature | columns | lookback (bars) | version | description |", "|---|---|---|---|---|"]
    for f in fs.FEATURES.values():
        lines.append(f"| {f.name} | {', '.join(f.columns)} | {f.lookback} | {f.version} | {f.description} |")
    return "\n".join(lines)


def _date_symbol_key(day: date, symbol: str) -> str:
    return str(dg.MultiPartitionKey({"date": day.isoformat(), "symbol": symbol}))


@dataclass(frozen=True)
class FeaturePlan:
    """What one features partition reads: its day's bars and the history days before it."""

    key: str
    symbol: str
    day: date
    today: StoredPartition
    history: list[StoredPartition]  # newest first
    inputs_json: str
    data_version: str


def plan_features(lake, keys: list[str], code_version: str) -> list[FeaturePlan]:
    """Plan every partition of a run from the manifests alone (no data read), in (symbol, day) order."""
    spec = dataset_spec("bars_1m")
    wanted: dict[str, list[tuple[date, str]]] = {}
    for key in keys:
        day, symbol = split_key(key)
        wanted.setdefault(symbol, []).append((date.fromisoformat(day), str(key)))
    plans = []
    lookback = fs.max_lookback()
    for symbol in sorted(wanted):
        days = sorted(wanted[symbol])
        index = day_index(lake, spec, symbol, days[0][0] - timedelta(days=HISTORY_SEARCH_DAYS), days[-1][0])
        for day, key in days:
            today = index.get(day)
            if today is None:
                raise dg.Failure(
                    description=f"features {key}: bars_1m {day}|{symbol} is not in the lake; materialize bars_1m for it first",
                    metadata={"missing": f"bars_1m/symbol={symbol}/date={day}"},
                )
            history = history_days(index, day, lookback, HISTORY_SEARCH_DAYS)
            inputs = versions_json([today, *history])
            plans.append(FeaturePlan(key, symbol, day, today, history, inputs, lineage_digest(code_version, inputs)))
    return plans


def build_features_asset(code_version: str = fs.FEATURE_SET_VERSION) -> dg.AssetsDefinition:
    """The ``features`` asset; ``code_version`` defaults to the feature set's version (tests pass others)."""

    @daily_dataset_asset(
        "features",
        "research",
        code_version=code_version,
        metadata_extra={"features/version": code_version, "features/registry": dg.MetadataValue.md(feature_registry_markdown())},
        description_extra=f"\n\nA value at t uses bars at or before t only; each day warms up on up to {fs.max_lookback()} bars "
        f"of the days before it (walking back up to {HISTORY_SEARCH_DAYS} days over weekends and holidays).",
        ins={"bars_1m": dg.AssetIn(partition_mapping=SAME_AND_PREVIOUS_DAY, metadata={ALLOW_MISSING_KEY: True})},
        pool="warm_writer",
    )
    def features(context: dg.AssetExecutionContext, lake: LakeResource, bars_1m: PartitionInputs) -> dg.Output[PartitionStream]:
        """Point-in-time features of each symbol-day, with lineage (feature version, bars SHA-256)."""
        store = lake.lake()
        spec = dataset_spec("bars_1m")
        plans = plan_features(store, [str(k) for k in context.partition_keys], code_version)
        for plan in plans:
            context.add_asset_metadata(
                {
                    "feature_version": code_version,
                    "lineage/data_version": plan.data_version,
                    "lineage/inputs": dg.MetadataValue.json(json.loads(plan.inputs_json)),
                    "history_days": ", ".join(p.day.isoformat() for p in reversed(plan.history)) or "none",
                    "history_rows": sum(p.rows for p in plan.history),
                },
                partition_key=plan.key,
            )

        def produce():
            last: tuple[str, date, pl.DataFrame] | None = None  # the previous day computed, re-used as history
            for i, plan in enumerate(plans, 1):
                bars = bars_1m.get(plan.key)
                if bars is None:
                    raise PartitionNotFound(f"features {plan.key}: bars_1m {plan.day}|{plan.symbol} disappeared from the lake")
                frames = []
                for stored in plan.history:
                    if last is not None and (last[0], last[1]) == (plan.symbol, stored.day):
                        frames.append(last[2])
                    elif stored.day == plan.day - timedelta(days=1):  # the mapped input: the previous day
                        frames.append(bars_1m.get(_date_symbol_key(stored.day, plan.symbol)))
                    else:  # further back (weekend, holiday): through the lake
                        frames.append(store.read_from(spec, stored.partition, stored.tier))
                if any(f is None for f in frames):
                    raise PartitionNotFound(f"features {plan.key}: a bars_1m day of its history disappeared from the lake")
                history = [f for f in reversed(frames) if f.height]
                tail = fs.tail_for_next_day(pl.concat(history, how="diagonal_relaxed")) if history else None
                out = fs.compute_features(bars, tail).with_columns(pl.lit(plan.inputs_json).alias("input_versions"))
                context.log.info(
                    f"[{i}/{len(plans)}] {plan.key}: {out.height} rows from {bars.height} bars "
                    f"+ {0 if tail is None else tail.height} history bars ({len(plan.history)} day(s))"
                )
                last = (plan.symbol, plan.day, bars)
                yield plan.key, out

        summary = {"feature_version": code_version, "feature_columns": len(fs.feature_columns())}
        # A data version per output: exact for a single partition; a range gets Dagster's own (per
        # partition it is still in the metadata above and in the stored input_versions column).
        version = dg.DataVersion(plans[0].data_version) if len(plans) == 1 else None
        return _output(PartitionStream(produce(), summary=lambda: summary), data_version=version)

    return features


features = build_features_asset()


# ----------------------------------------------------------------------------------------------
# Heuristics registry
# ----------------------------------------------------------------------------------------------
def strategies_directory(override: str | None = None) -> Path:
    """The spec directory: ``override``, else ``LAKE_STRATEGIES``, else ``<repo>/strategies``."""
    return Path(override or os.environ.get(STRATEGIES_ENV) or REPO_ROOT / "strategies").expanduser()


def load_runs(directory: Path) -> list[hx.RunSpec]:
    """Every run (grid point) of every spec in ``directory``; :class:`dg.Failure` naming file and field."""
    try:
        return [run for spec in hx.load_specs(directory) for run in hx.expand_grid(spec)]
    except hx.SpecError as exc:
        raise dg.Failure(
            description=f"invalid strategy spec: {exc}",
            metadata={"file": exc.source, "field": exc.field, "problem": exc.problem},
        ) from exc


def register_strategy_runs(instance: dg.DagsterInstance, strategies_dir: str | Path | None = None) -> list[str]:
    """Add every run id of the specs in ``strategies_dir`` to the ``strategy_runs`` partitions.

    Returns the run ids defined there, in file then grid order. Idempotent (known ids are skipped).
    """
    directory = Path(strategies_dir) if strategies_dir is not None else strategies_directory()
    # outside a run the plain SpecError ("file: field: problem") is the clearest error
    runs = [run for spec in hx.load_specs(directory) for run in hx.expand_grid(spec)]
    ids = list(dict.fromkeys(r.spec_id for r in runs))
    known = set(instance.get_dynamic_partitions(strategy_runs.name))
    new = [i for i in ids if i not in known]
    if new:
        instance.add_dynamic_partitions(strategy_runs.name, new)
    return ids


class StrategiesConfig(dg.Config):
    directory: Optional[str] = None  # default: LAKE_STRATEGIES, else <repo>/strategies


def stored_table(lake, name: str) -> pl.DataFrame | None:
    try:
        return lake.read_partition(name, ())
    except PartitionNotFound:
        return None


@dg.asset(
    group_name="research",
    metadata=dataset_metadata("heuristic_defs"),
    kinds=dataset_kinds("heuristic_defs") | {"yaml"},
    owners=OWNERS,
    code_version="1",
    description=dataset_description("heuristic_defs")
    + "\n\nLoaded from the spec files in `strategies/` (`LAKE_STRATEGIES`); a grid expands into one row per combination.",
    pool="warm_writer",
)
def heuristic_defs(context: dg.AssetExecutionContext, config: StrategiesConfig, lake: LakeResource) -> dg.Output[pl.DataFrame]:
    """Append the runs of the current spec files that were never seen; keep every earlier one."""
    directory = strategies_directory(config.directory)
    runs = load_runs(directory)
    store = lake.lake()
    stored = stored_table(store, "heuristic_defs")
    if stored is None:
        stored = pl.DataFrame(schema=hx.HEURISTIC_DEFS_SCHEMA)
    known = set(stored["id"].to_list())
    unique_runs = list({r.spec_id: r for r in runs}.values())
    fresh = [r for r in unique_runs if r.spec_id not in known]
    fresh_ids = {r.spec_id for r in fresh}
    table = pl.concat([stored.select(list(hx.HEURISTIC_DEFS_SCHEMA)), hx.heuristic_defs_rows(fresh, _utc_now())])
    ids = table["id"].to_list()
    registered = set(context.instance.get_dynamic_partitions(strategy_runs.name))
    if missing := [i for i in ids if i not in registered]:
        context.instance.add_dynamic_partitions(strategy_runs.name, missing)
    context.log.info(f"{len(unique_runs)} run(s) in {directory}: {len(fresh)} new; {table.height} version(s) stored")
    current = pl.DataFrame(
        {
            "id": [r.spec_id for r in unique_runs],
            "kind": [r.kind for r in unique_runs],
            "params": [json.dumps(r.params, sort_keys=True) for r in unique_runs],
            "new": ["yes" if r.spec_id in fresh_ids else "" for r in unique_runs],
        },
        schema={"id": pl.Utf8, "kind": pl.Utf8, "params": pl.Utf8, "new": pl.Utf8},
    )
    return _output(
        table,
        # Content-derived: the set of run ids (each id is a hash of its definition).
        data_version=dg.DataVersion(lineage_digest("heuristic_defs", json.dumps(sorted(ids)))),
        metadata={
            "strategies_dir": str(directory),
            "runs_in_directory": len(unique_runs),
            "new_runs": len(fresh),
            "versions_stored": table.height,
            "runs": table_metadata(current, ["id", "kind", "params", "new"], max_rows=100),
        },
    )


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


# ----------------------------------------------------------------------------------------------
# Leaderboard
# ----------------------------------------------------------------------------------------------
class LeaderboardConfig(dg.Config):
    metric: str = "sharpe"
    descending: Optional[bool] = None  # default: the metric's known direction
    label_tolerance_minutes: float = 5.0  # a match within this of a labelled event counts as finding it
    labels_directory: Optional[str] = None  # default: <strategies>/labels; files {spec name}.csv|.parquet


LABEL_SUFFIXES = (".csv", ".parquet")


def load_labels(path: Path) -> pl.DataFrame:
    """Labelled events of one heuristic: ``ts`` (ISO 8601, UTC unless an offset is given), ``symbol``."""
    try:
        raw = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
    except Exception as exc:  # noqa: BLE001 - any parse error is reported with the file
        raise LakeValidationError(f"{path}: (file): not readable as {path.suffix[1:]}: {exc}") from None
    for column in ("ts", "symbol"):
        if column not in raw.columns:
            raise LakeValidationError(f"{path}: {column}: missing column (need ts, symbol)")
    ts = raw["ts"]
    if not isinstance(ts.dtype, pl.Datetime):
        # Per value: a hand-written file may mix forms (Z, +01:00, no offset); label files are small.
        parsed = []
        for i, text in enumerate(ts.cast(pl.Utf8).to_list()):
            try:
                moment = datetime.fromisoformat(text)
            except (TypeError, ValueError):
                raise LakeValidationError(f"{path}: ts: row {i + 1}: not an ISO 8601 time: {text!r}") from None
            parsed.append(moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
        ts = pl.Series("ts", parsed, dtype=pl.Datetime("us", "UTC"))
    elif ts.dtype.time_zone is None:
        ts = ts.dt.replace_time_zone("UTC")
    symbols = []
    for i, symbol in enumerate(raw["symbol"].cast(pl.Utf8).to_list()):
        try:
            symbols.append(validate_symbol(symbol))
        except (LakeValidationError, TypeError, AttributeError) as exc:
            raise LakeValidationError(f"{path}: symbol: row {i + 1}: {exc}") from None
    return pl.DataFrame({"ts": ts.cast(bt.TS_DTYPE), "symbol": pl.Series(symbols, dtype=pl.Utf8)})


def label_files(directory: Path) -> dict[str, Path]:
    """``{spec name: labels file}`` in ``directory`` (none when it does not exist)."""
    if not directory.is_dir():
        return {}
    return {p.stem: p for p in sorted(directory.iterdir()) if p.is_file() and p.suffix in LABEL_SUFFIXES}


def label_scores(lake, summaries: pl.DataFrame, files: dict[str, Path], tolerance: timedelta) -> pl.DataFrame:
    """precision/recall/F1 (and the label count) per (spec_id, symbol) for runs whose name has labels.

    A labels file scores the symbols it names; labels count only inside the run's data range for that
    symbol (events outside it could not be found).
    """
    rows = []
    labels_by_name = {name: load_labels(path) for name, path in files.items() if name in set(summaries["name"])}
    labelled_symbols = {name: set(labels["symbol"]) for name, labels in labels_by_name.items()}
    matches_by_run: dict[str, pl.DataFrame] = {}
    for run, spec_id, name, symbol, lo, hi in summaries.select(
        "run", "spec_id", "name", "symbol", "data_start", "data_end"
    ).iter_rows():
        if name not in labels_by_name or symbol not in labelled_symbols[name]:
            continue  # a labels file scores the symbols it names
        if run not in matches_by_run:
            try:
                matches_by_run[run] = lake.read_partition("signal_matches", (("run", run),))
            except PartitionNotFound:
                matches_by_run[run] = pl.DataFrame(schema=hx.SIGNAL_MATCHES_SCHEMA)
        labels = labels_by_name[name].filter((pl.col("symbol") == symbol) & pl.col("ts").is_between(lo, hi))
        matches = matches_by_run[run].filter(pl.col("symbol") == symbol)
        scores = hx.precision_recall_f1(matches, labels, tolerance)
        rows.append({"spec_id": spec_id, "symbol": symbol, "precision": scores["precision"], "recall": scores["recall"],
                     "f1": scores["f1"], "labels": int(scores["labels"])})
    schema = {"spec_id": pl.Utf8, "symbol": pl.Utf8, "precision": pl.Float64, "recall": pl.Float64, "f1": pl.Float64,
              "labels": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def build_leaderboard(lake, metric: str = "sharpe", descending: bool | None = None,
                      labels_dir: Path | None = None, tolerance: timedelta = timedelta(minutes=5)) -> pl.DataFrame:
    """Every stored backtest run (one row per run and symbol) ranked by ``metric``."""
    summaries = LakeClient(lake=lake).read("backtest_runs")
    if summaries.height == 0:
        raise dg.Failure(description="no backtest runs in the lake yet: materialize backtests for some strategy_runs first")
    files = label_files(labels_dir) if labels_dir is not None else {}
    scores = label_scores(lake, summaries, files, tolerance)
    table = summaries.drop("input_versions").join(scores, on=["spec_id", "symbol"], how="left")
    # A heuristic with a labels file is scored against it; every other run against outcome labels.
    labelled = pl.col("f1").is_not_null()
    outcome = {c: pl.col(f"outcome_{c}") if f"outcome_{c}" in table.columns else pl.lit(None, pl.Float64)
               for c in ("precision", "recall", "f1")}
    table = table.with_columns(
        *(pl.when(labelled).then(pl.col(c)).otherwise(outcome[c]).alias(c) for c in ("precision", "recall", "f1")),
        pl.when(labelled).then(pl.lit("labels")).when(outcome["f1"].is_not_null()).then(pl.lit("outcome"))
        .otherwise(pl.lit(None, pl.Utf8)).alias("f1_basis"),
    )
    try:
        ranked = lb.leaderboard(table.drop("run"), metric, descending=descending)
    except lb.LeaderboardError as exc:
        raise dg.Failure(description=f"leaderboard: {exc}") from exc
    return ranked


@dg.asset(
    group_name="research",
    metadata=dataset_metadata("leaderboard"),
    kinds=dataset_kinds("leaderboard"),
    owners=OWNERS,
    code_version=LEADERBOARD_CODE_VERSION,
    description=dataset_description("leaderboard")
    + "\n\nOne row per run and symbol; precision/recall/F1 for heuristics with labels in `strategies/labels/`.",
    deps=[dg.AssetDep("backtest_runs"), dg.AssetDep("signal_matches")],
    automation_condition=LEADERBOARD_AUTOMATION,
    pool="warm_writer",
)
def leaderboard(context: dg.AssetExecutionContext, config: LeaderboardConfig, lake: LakeResource) -> dg.Output[pl.DataFrame]:
    """Rank all stored backtest runs by the chosen metric (Sharpe by default), the other metrics beside it."""
    labels_dir = Path(config.labels_directory) if config.labels_directory else strategies_directory() / "labels"
    try:
        table = build_leaderboard(
            lake.lake(), config.metric, config.descending, labels_dir, timedelta(minutes=config.label_tolerance_minutes)
        )
    except LakeValidationError as exc:
        raise dg.Failure(description=f"labels: {exc}") from exc
    shown = ["rank", "spec_id", "symbol", config.metric,
             *[c for c in (*SUMMARY_COLUMNS, "precision", "recall", "f1", "f1_basis") if c != config.metric]]
    return dg.Output(
        table,
        metadata={
            "metric": config.metric,
            "runs": table["spec_id"].n_unique(),
            "leaderboard": table_metadata(table, shown, max_rows=30),
            "query": "lake sql \"select * from leaderboard order by rank\"",
        },
    )

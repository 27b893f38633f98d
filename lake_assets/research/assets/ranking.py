"""The ``leaderboard`` asset: backtest summaries ranked by a metric, with scores against labelled events."""

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import dagster as dg
import polars as pl

from lake_assets.metadata import OWNERS, dataset_description, dataset_kinds, dataset_metadata
from lake_assets.research.assets.backtesting import LEADERBOARD_AUTOMATION
from lake_assets.research.assets.common import LEADERBOARD_CODE_VERSION, SUMMARY_COLUMNS, table_metadata
from lake_assets.research.assets.registry import strategies_directory
from lake_resources.catalog.validation import LakeValidationError, validate_symbol
from lake_resources.client import LakeClient
from lake_resources.dagster_io import LakeResource
from lake_resources.research import backtest as bt
from lake_resources.research import heuristics as hx
from lake_resources.research import leaderboard as lb
from lake_resources.storage import PartitionNotFound


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

"""The ``features`` asset: the feature set per date x symbol, planned so up-to-date partitions are skipped."""

import json
import warnings
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import polars as pl

from lake_assets.metadata import daily_dataset_asset
from lake_assets.partitions import split_key
from lake_assets.research.assets.common import HISTORY_SEARCH_DAYS, _output
from lake_assets.research.lineage import (
    StoredPartition,
    day_index,
    history_days,
    lineage_digest,
    versions_json,
)
from lake_resources.catalog.datasets import dataset_spec
from lake_resources.dagster_io import ALLOW_MISSING_KEY, LakeResource, PartitionInputs, PartitionStream
from lake_resources.research import features as fs
from lake_resources.storage import PartitionNotFound

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

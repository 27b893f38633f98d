"""Asset checks for every dataset asset, from one factory: :func:`build_dataset_checks`.

Each dataset asset gets one multi-check op reading each partition once through the lake (from the
fastest tier holding it, as ``Lake.read_partition``) and evaluating the kinds of checks asked for:

- ``schema``: the dataset's pandera (polars) schema; **blocking**: a failure stops everything
  downstream in the run. Always emits a result (an unreadable partition is a failure), with the
  failure count, a sample of failure cases and of the failing rows (markdown tables).
- ``timestamps``: every ``ts`` inside the partition's UTC day and non-decreasing (bars: on a minute boundary).
- ``prices``: prices > 0 and finite, bid <= ask, no price jump against the robust rolling level
  (``lake_resources.transforms.domain``). ``ohlc``: low <= open, close <= high.
- ``duplicates``: rows repeating an earlier row on the dataset's key columns.
- ``gaps``: UTC hours of the instrument's trading hours without data (weekends and the closures of
  ``lake_resources.catalog.calendar`` are not gaps), listed in the result.
- ``row_count``: the partition's rows against the same symbol's trailing days (from the partition
  manifests, via ``Lake.locate``).
- ``checksum``: the stored partition's rows and SHA-256 match its manifest (``Lake.verify_read``, on
  the copy the other checks read: the partition is not read again).

Checks are partitioned like their asset: a result per partition, shown per partition in the UI. When
a single-run backfill stores a range of partitions, every partition of the range is checked and each
result also lists the range's failing partitions (``run_failing_partitions``). Each partition is read
once; warm ones in batches through one DuckDB connection per batch (``WARM_READ_BATCH``).
"""


from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import dagster as dg
import polars as pl

# The record Dagster itself builds from an AssetCheckResult, to point a result at the partition's
# latest materialization (a per-partition result in a range run is emitted as an evaluation).
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from lake_assets.canonical.assets import bars_1d, bars_1h, bars_1m, bars_5m
from lake_assets.canonical.raw_schemas import RAW_DUKASCOPY_SCHEMA, RAW_VENDOR_SCHEMA  # (registers them)
from lake_assets.ingest.assets import raw_dukascopy, ticks
from lake_assets.ingest.vendor import headlines, option_greeks, raw_vendor
from lake_resources.catalog.calendar import Market, expected_hours, market_of, trading_sessions
from lake_resources.catalog.datasets import DatasetSpec, Partition, Tier, dataset_spec, partition_label
from lake_resources.catalog.instruments import UnknownSymbolError, instrument
from lake_resources.catalog.schemas import SCHEMAS, validate_frame
from lake_resources.dagster_io import LakeResource, frame_preview_md, partition_from_key
from lake_resources.sources.vendor import FEED_KEYS
from lake_resources.storage import Lake, Located, PartitionNotFound
from lake_resources.transforms import quality

SCHEMA, TIMESTAMPS, PRICES, OHLC, DUPLICATES, GAPS, ROW_COUNT, CHECKSUM = (
    "schema", "timestamps", "prices", "ohlc", "duplicates", "gaps", "row_count", "checksum",
)
SAMPLE_ROWS = 10  # failing rows shown in a result
MAX_LISTED_PARTITIONS = 100
# Warm partitions read per DuckDB connection: opening the file costs more than reading a day of bars,
# and the batch bounds both the frames held at once and how long other processes' writers wait.
WARM_READ_BATCH = 32


@dataclass(frozen=True)
class CheckKind:
    check_name: str  # the asset check's name in Dagster
    description: str
    needs: tuple[str, ...] = ()  # partition fields the check needs


CHECK_KINDS: dict[str, CheckKind] = {
    SCHEMA: CheckKind("schema_valid", "Rows match the dataset's pandera schema (column types, nullability, value "
                      "rules). Blocking: a failure stops downstream assets."),
    TIMESTAMPS: CheckKind("timestamps_in_day", "Every ts is inside the partition's UTC day and never goes back in time "
                          "(bars: on a minute boundary).", ("date",)),
    PRICES: CheckKind("prices_valid", "Prices are positive and finite; bid <= ask; no price jump against the rolling "
                      "median level (a factor per market)."),
    OHLC: CheckKind("ohlc_consistent", "low <= open, close <= high (mid, and bid/ask where present)."),
    DUPLICATES: CheckKind("no_duplicates", "No row repeats an earlier row on the dataset's key columns."),
    GAPS: CheckKind("no_trading_hour_gaps", "Every UTC hour inside the instrument's trading hours has data "
                    "(weekends and known closures are not gaps).", ("date", "symbol")),
    ROW_COUNT: CheckKind("row_count_normal", "The row count is in line with the symbol's trailing days "
                         "(median +/- robust band, from the partition manifests).", ("date", "symbol")),
    CHECKSUM: CheckKind("checksum_matches_manifest", "The stored partition's row count and SHA-256 match its manifest."),
}


# ------------------------------------------------------------------------------------------
# Evaluating one partition
# ------------------------------------------------------------------------------------------
@dataclass
class Evaluated:
    """One check's result on one partition."""

    passed: bool
    severity: str  # "ERROR" | "WARN"
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class PartitionData:
    key: str | None
    partition: Partition
    tier: Tier | None  # where it is stored (None: nowhere)
    frame: pl.DataFrame | None
    read_error: str | None
    file_sha256: str | None = None  # of the stored file's bytes, when read from a Parquet file of its own

    @property
    def day(self) -> date | None:
        value = dict(self.partition).get("date")
        return date.fromisoformat(value) if value else None

    @property
    def symbol(self) -> str | None:
        return dict(self.partition).get("symbol")


def _md(df: pl.DataFrame, rows: int = SAMPLE_ROWS) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame_preview_md(df, rows))


def _from_outcome(outcome: quality.CheckOutcome) -> Evaluated:
    meta = dict(outcome.metadata)
    if outcome.failing_rows is not None and outcome.failing_rows.height:
        meta["failing_rows_sample"] = _md(outcome.failing_rows)
    return Evaluated(outcome.passed, outcome.severity, outcome.description, meta)


def _market(symbol: str) -> Market:
    try:
        return market_of(symbol)
    except UnknownSymbolError:
        return Market.UNKNOWN


def _trades(symbol: str, day: date) -> bool:
    """Does the symbol trade at all on ``day`` (False on weekends/closures; True when unknown)?"""
    return _market(symbol) is Market.UNKNOWN or bool(expected_hours(symbol, day))


def _trading_hours(symbol: str, day: date) -> float:
    """How long the symbol trades on ``day``, in hours (the calendar's sessions; 0 when closed)."""
    return sum((end - start).total_seconds() for start, end in trading_sessions(symbol, day)) / 3600


class TrailingRowCounts:
    """Row counts of a symbol's trailing partitions, read from the manifests (no data is read)."""

    def __init__(self, store: Lake, spec: DatasetSpec, partitions: Sequence[Partition], days: int):
        self.store, self.spec, self.days = store, spec, days
        self.lookback = days * 7 // 5 + 10  # calendar days holding `days` trading days, with holidays
        dated = [(dict(p)["symbol"], date.fromisoformat(dict(p)["date"])) for p in partitions]
        symbols = sorted({s for s, _ in dated})
        lo = min(d for _, d in dated) - timedelta(days=self.lookback) if dated else None
        hi = max(d for _, d in dated) if dated else None
        located = store.locate(spec, symbols, lo, hi) if dated else []
        self.located: dict[tuple[str, date], Located] = {
            (dict(l.partition)["symbol"], date.fromisoformat(dict(l.partition)["date"])): l for l in located
        }
        self._warm: dict | None = None
        self._rows: dict[Partition, int | None] = {}  # a range's partitions share most of their trailing days

    def rows(self, loc: Located) -> int | None:
        if loc.partition in self._rows:
            return self._rows[loc.partition]
        if loc.tier is Tier.WARM:
            if self._warm is None:
                self._warm = self.store.warm.manifests(self.spec)
            manifest = self._warm.get(loc.partition)
        else:
            manifest = self.store.manifest(self.spec, loc.partition, loc.tier)
        rows = self._rows[loc.partition] = None if manifest is None else int(manifest["rows"])
        return rows

    def trailing(self, symbol: str, day: date) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for back in range(1, self.lookback + 1):
            d = day - timedelta(days=back)
            loc = self.located.get((symbol, d))
            if loc is None or not _trades(symbol, d):
                continue
            rows = self.rows(loc)
            if rows is not None:
                out.append((d.isoformat(), rows))
            if len(out) >= self.days:
                break
        return out[::-1]


class _Unavailable:
    """Stands in for TrailingRowCounts when the manifests could not be listed."""

    def __init__(self, reason: str):
        self.reason = reason

    def trailing(self, symbol: str, day: date) -> list[tuple[str, int]]:
        raise RuntimeError(self.reason)


@dataclass(frozen=True)
class CheckOptions:
    duplicate_keys: tuple[str, ...] | None = None
    duplicate_severity: str = "ERROR"
    gaps_for_source: str | None = None  # only symbols of this catalogue source are expected to have data
    trailing_days: int = 20
    bars: bool = False  # a bars dataset: timestamps on minute boundaries


def _evaluate(kind: str, data: PartitionData, spec: DatasetSpec, store: Lake, options: CheckOptions,
              trailing: TrailingRowCounts | None) -> Evaluated:
    if kind == CHECKSUM:
        if data.frame is None:  # nothing read to compare: verify reads the stored copy and says what is wrong
            ok, detail = store.verify(spec, data.partition, data.tier)
        else:
            ok, detail = store.verify_read(spec, data.partition, data.tier, data.frame, data.file_sha256)
        return Evaluated(ok, "ERROR", ("stored partition matches its manifest: " if ok else
                                       "stored partition does NOT match its manifest: ") + detail,
                         {"tier": data.tier.value if data.tier else "none", "detail": detail})
    if data.frame is None:
        return Evaluated(False, "ERROR", f"cannot read {spec.name} {partition_label(data.partition)}: {data.read_error}",
                         {"error": data.read_error or ""})
    frame = data.frame
    if kind == SCHEMA:
        outcome = validate_frame(spec.name, frame)
        meta: dict[str, Any] = {"rows": frame.height, "failure_count": outcome.failure_count}
        if not outcome.passed:
            meta["failure_cases_sample"] = _md(outcome.failures, 20)
            rows = outcome.failures["index"].drop_nulls().unique(maintain_order=True).head(SAMPLE_ROWS).to_list()
            if rows:
                meta["failing_rows_sample"] = _md(frame.with_row_index("row").filter(pl.col("row").is_in(rows)))
        return Evaluated(outcome.passed, "ERROR", outcome.message, meta)
    if kind == TIMESTAMPS:
        return _from_outcome(quality.check_timestamps_in_day(frame, data.day, bars=options.bars))
    if kind == PRICES:
        return _from_outcome(quality.check_prices(frame))
    if kind == OHLC:
        return _from_outcome(quality.check_ohlc(frame))
    if kind == DUPLICATES:
        return _from_outcome(quality.check_duplicates(frame, options.duplicate_keys,
                                                      severity=options.duplicate_severity))
    if kind == GAPS:
        symbol = data.symbol
        if options.gaps_for_source and instrument(symbol).source != options.gaps_for_source:
            return Evaluated(True, "WARN", f"{symbol} has no {options.gaps_for_source} feed for {spec.name}: "
                             "gaps not checked", {"symbol": symbol})
        return _from_outcome(quality.check_gaps(frame, symbol, data.day))
    if kind == ROW_COUNT:
        symbol, day = data.symbol, data.day
        if not _trades(symbol, day):
            return Evaluated(True, "WARN", f"{symbol} does not trade on {day} (weekend or closure): "
                             f"{frame.height:,} rows not judged", {"current_rows": frame.height})
        history = trailing.trailing(symbol, day)
        hours = [_trading_hours(symbol, date.fromisoformat(d)) for d, _ in history]
        if _market(symbol) is Market.UNKNOWN:  # no calendar: whole days are all there is to compare
            outcome = quality.check_row_count_anomaly(frame.height, [n for _, n in history])
        else:
            outcome = quality.check_row_count_anomaly(frame.height, [n for _, n in history],
                                                      current_hours=_trading_hours(symbol, day), trailing_hours=hours)
        evaluated = _from_outcome(outcome)
        evaluated.metadata["trailing_days"] = [d for d, _ in history]
        return evaluated
    raise ValueError(f"unknown check kind {kind!r}")


def _read_each(store: Lake, spec: DatasetSpec, keys: Sequence[str | None],
               partitions: Sequence[Partition]) -> Iterator[PartitionData]:
    """Each partition once, in order, from the fastest tier holding it (as ``Lake.read_partition``),
    with that tier; warm ones in batches of ``WARM_READ_BATCH`` through one connection each."""
    items = list(zip(keys, partitions))
    for start in range(0, len(items), WARM_READ_BATCH):
        batch = items[start:start + WARM_READ_BATCH]
        found: list[Tier | None | Exception] = []
        for _, partition in batch:
            try:
                found.append(store.find(spec, partition))
            except Exception as exc:  # noqa: BLE001 - reported as that partition's read error
                found.append(exc)
        warm = [i for i, tier in enumerate(found) if tier is Tier.WARM]
        try:
            frames = dict(zip(warm, store.warm.read_partitions(spec, [batch[i][1] for i in warm])))
        except Exception:  # noqa: BLE001 - then each is read alone below, to report its own error
            frames = {}
        for i, (key, partition) in enumerate(batch):
            yield _read(store, spec, key, partition, found[i], frames.get(i))


def _read(store: Lake, spec: DatasetSpec, key: str | None, partition: Partition,
          found: Tier | None | Exception, frame: pl.DataFrame | None) -> PartitionData:
    """One partition from the tier ``found`` for it (``frame``: its rows, when already read)."""
    tier = found if isinstance(found, Tier) else None
    try:
        if isinstance(found, Exception):
            raise found
        if tier is None:
            raise PartitionNotFound(f"{spec.name} {partition_label(partition)} is not stored in any tier (hot, warm, cold)")
        if frame is not None:
            return PartitionData(key, partition, tier, frame, None)
        frame, file_sha256 = store.read_stored(spec, partition, tier)
        return PartitionData(key, partition, tier, frame, None, file_sha256)
    except Exception as exc:  # noqa: BLE001 - an unreadable partition is a failed check, never a crash
        return PartitionData(key, partition, tier, None, f"{type(exc).__name__}: {exc}")


def _targets(instance: dg.DagsterInstance, asset_key: dg.AssetKey,
             keys: Sequence[str | None]) -> dict[str | None, AssetCheckEvaluationTargetMaterializationData]:
    """Each partition's latest materialization, so the UI links a result to what it checked: one query
    for the whole range, then one per partition whose latest is not among its newest records."""
    def fetch(partition_keys: list[str] | None, limit: int):
        return instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=partition_keys), limit=limit).records

    partitioned = keys != [None]
    latest = {}
    for rec in fetch(list(keys) if partitioned else None, len(keys)):  # newest first
        latest.setdefault(rec.partition_key if partitioned else None, rec)
    for key in [k for k in keys if k not in latest] if partitioned else []:
        found = fetch([key], 1)
        if found:
            latest[key] = found[0]
    return {
        key: AssetCheckEvaluationTargetMaterializationData(
            storage_id=rec.storage_id, run_id=rec.event_log_entry.run_id, timestamp=rec.timestamp)
        for key, rec in latest.items()
    }


# ------------------------------------------------------------------------------------------
# The factory
# ------------------------------------------------------------------------------------------
def build_dataset_checks(
    asset: dg.AssetsDefinition | dg.AssetKey | str,
    dataset_name: str,
    kinds_of_checks: Iterable[str],
    *,
    partitions_def: dg.PartitionsDefinition | None = None,
    duplicate_keys: Sequence[str] | None = None,
    duplicate_severity: str = "ERROR",
    gaps_for_source: str | None = None,
    trailing_days: int = 20,
    bars: bool = False,
) -> dg.AssetChecksDefinition:
    """Asset checks of ``kinds_of_checks`` (see :data:`CHECK_KINDS`) for an asset storing ``dataset_name``.

    Partitioned like the asset (``partitions_def`` defaults to the asset's); reads each partition through
    the lake (resource ``lake``). ``duplicate_keys``: key columns for ``duplicates`` (default: all
    columns); ``gaps_for_source``: only symbols whose catalogue source is this are expected to have data
    (e.g. ``"dukascopy"`` for ticks); ``trailing_days``: history of ``row_count``; ``bars``: a bars
    dataset, whose ``timestamps`` check also wants every ``ts`` on a minute boundary.
    """
    spec = dataset_spec(dataset_name)
    kinds = list(dict.fromkeys(kinds_of_checks))
    unknown = [k for k in kinds if k not in CHECK_KINDS]
    if unknown:
        raise ValueError(f"unknown check kind(s) {unknown}; known: {', '.join(CHECK_KINDS)}")
    for k in kinds:
        missing = [f for f in CHECK_KINDS[k].needs if f not in spec.partition_by]
        if missing:
            raise ValueError(f"check {k!r} needs partition field(s) {missing}; {spec.name} is partitioned by {spec.partition_by}")
    if SCHEMA in kinds and spec.name not in SCHEMAS:
        raise ValueError(f"check 'schema': no pandera schema for {spec.name} in lake_resources.catalog.schemas.SCHEMAS")
    if isinstance(asset, dg.AssetsDefinition):
        asset_key = asset.key
        partitions_def = partitions_def or asset.partitions_def
    else:
        asset_key = dg.AssetKey.from_coercible(asset)
    if bool(spec.partition_by) != (partitions_def is not None):
        raise ValueError(f"{asset_key.to_user_string()}: dataset {spec.name} is partitioned by {spec.partition_by or 'nothing'} "
                         f"but the checks' partitions definition is {partitions_def!r}")
    options = CheckOptions(tuple(duplicate_keys) if duplicate_keys else None, duplicate_severity,
                           gaps_for_source, trailing_days, bars)
    specs = {
        kind: dg.AssetCheckSpec(
            CHECK_KINDS[kind].check_name,
            asset=asset_key,
            description=CHECK_KINDS[kind].description
            + (f" Key columns: {', '.join(options.duplicate_keys)}." if kind == DUPLICATES and options.duplicate_keys else ""),
            blocking=kind == SCHEMA,
            partitions_def=partitions_def,
            metadata={"lake/dataset": spec.name, "lake/check_kind": kind},
        )
        for kind in kinds
    }

    @dg.multi_asset_check(
        specs=list(specs.values()),
        name=f"check_{asset_key.to_python_identifier()}",
        description=f"Quality checks of {spec.name}: {', '.join(kinds)}",
        can_subset=True,
    )
    def _checks(context: dg.AssetCheckExecutionContext, lake: LakeResource):
        store = lake.lake()
        partitioned = partitions_def is not None
        keys: list[str | None] = list(context.partition_keys) if partitioned else [None]
        chosen = {k: s for k, s in specs.items() if s.key in context.selected_asset_check_keys}
        partitions = [partition_from_key(spec, partitions_def, key) for key in keys]
        trailing = None
        if ROW_COUNT in chosen:
            try:
                trailing = TrailingRowCounts(store, spec, partitions, trailing_days)
            except Exception as exc:  # noqa: BLE001 - reported by the row-count results below
                trailing = _Unavailable(f"trailing row counts unavailable: {type(exc).__name__}: {exc}")
        results: dict[str, list[tuple[str | None, Evaluated]]] = {k: [] for k in chosen}
        for i, data in enumerate(_read_each(store, spec, keys, partitions), 1):
            key, label = data.key, partition_label(data.partition)
            for kind in chosen:
                try:
                    evaluated = _evaluate(kind, data, spec, store, options, trailing)
                except Exception as exc:  # noqa: BLE001 - a check that crashed still reports, as a failure
                    evaluated = Evaluated(False, "ERROR", f"check could not run: {type(exc).__name__}: {exc}")
                evaluated.description = f"{label}: {evaluated.description}"
                evaluated.metadata = {"partition": label, **evaluated.metadata}
                results[kind].append((key, evaluated))
            if len(keys) > 1 and i % 50 == 0:
                context.log.info(f"checked {i}/{len(keys)} partitions of {spec.name}")

        targets = _targets(context.instance, asset_key, keys)
        for kind, check_spec in chosen.items():
            failing = [k or "(unpartitioned)" for k, ev in results[kind] if not ev.passed]
            yield dg.Output(None, output_name=check_spec.get_python_identifier())
            for key, ev in results[kind]:
                meta = dict(ev.metadata)
                if len(keys) > 1:
                    meta["run_partitions"] = len(keys)
                    meta["run_failing_partitions"] = failing[:MAX_LISTED_PARTITIONS]
                yield dg.AssetCheckEvaluation(
                    asset_key=asset_key,
                    check_name=check_spec.name,
                    passed=ev.passed,
                    metadata=meta,
                    target_materialization_data=targets.get(key),
                    severity=dg.AssetCheckSeverity.WARN if ev.severity == "WARN" else dg.AssetCheckSeverity.ERROR,
                    description=ev.description,
                    blocking=check_spec.blocking,
                    partition=key if partitioned else None,
                )
            if failing:
                log = context.log.error if check_spec.blocking else context.log.warning
                log(f"{spec.name} {check_spec.name}: failed on {len(failing)} of {len(keys)} partition(s): "
                    + ", ".join(failing[:10]) + (" ..." if len(failing) > 10 else ""))

    return _checks


# ------------------------------------------------------------------------------------------
# Checks of the lake's dataset assets
# ------------------------------------------------------------------------------------------
_BAR_CHECKS = (SCHEMA, TIMESTAMPS, PRICES, OHLC, DUPLICATES, GAPS, ROW_COUNT, CHECKSUM)

CHECKS: list[dg.AssetChecksDefinition] = [
    build_dataset_checks(raw_dukascopy, "raw_dukascopy", (SCHEMA, TIMESTAMPS, DUPLICATES, CHECKSUM),
                         duplicate_keys=("symbol", "hour")),
    build_dataset_checks(raw_vendor, "raw_vendor", (SCHEMA, TIMESTAMPS, DUPLICATES, CHECKSUM),
                         duplicate_keys=("vendor", "feed", "pull_id")),
    # exact repeats of a tick can be real quotes: worth a look (WARN), not a reason to block
    build_dataset_checks(ticks, "ticks", (SCHEMA, TIMESTAMPS, PRICES, DUPLICATES, GAPS, ROW_COUNT, CHECKSUM),
                         duplicate_severity="WARN", gaps_for_source="dukascopy"),
    build_dataset_checks(bars_1m, "bars_1m", _BAR_CHECKS, duplicate_keys=("symbol", "ts"), bars=True),
    build_dataset_checks(bars_5m, "bars_5m", _BAR_CHECKS, duplicate_keys=("symbol", "ts"), bars=True),
    build_dataset_checks(bars_1h, "bars_1h", _BAR_CHECKS, duplicate_keys=("symbol", "ts"), bars=True),
    # one bar a day: neither hourly gaps nor row-count anomalies mean anything here
    build_dataset_checks(bars_1d, "bars_1d", (SCHEMA, TIMESTAMPS, PRICES, OHLC, DUPLICATES, CHECKSUM),
                         duplicate_keys=("symbol", "ts"), bars=True),
    build_dataset_checks(option_greeks, "option_greeks", (SCHEMA, TIMESTAMPS, DUPLICATES, ROW_COUNT, CHECKSUM),
                         duplicate_keys=FEED_KEYS["greeks"]),
    build_dataset_checks(headlines, "headlines", (SCHEMA, TIMESTAMPS, DUPLICATES, CHECKSUM),
                         duplicate_keys=FEED_KEYS["headlines"]),
]

#: For callers that want the checks of one check function: dataset -> its AssetChecksDefinition.
CHECKS_BY_DATASET: dict[str, dg.AssetChecksDefinition] = {
    name: c for name, c in zip(
        ["raw_dukascopy", "raw_vendor", "ticks", "bars_1m", "bars_5m", "bars_1h", "bars_1d", "option_greeks", "headlines"],
        CHECKS,
    )
}

__all__ = ["CHECKS", "CHECK_KINDS", "CHECKS_BY_DATASET", "RAW_DUKASCOPY_SCHEMA", "RAW_VENDOR_SCHEMA",
           "build_dataset_checks"]

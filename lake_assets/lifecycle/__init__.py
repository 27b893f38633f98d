"""Tier lifecycle in Dagster: migration by policy, cold compaction and storage health.

- ``tier_migration``: moves partitions between tiers by the policies in ``lifecycle.yaml`` (copy,
  verify at the destination, then delete), then sweeps leftovers of interrupted writes. Run by the
  daily ``lifecycle_migration`` schedule, or by hand from the launchpad with a date range, a
  dataset, a target tier, ``as_of`` or ``dry_run``.
- ``cold_compaction``: daily cold files of closed months -> one file per symbol-month.
- ``storage_health``: bytes, partitions, rows, oldest/newest per dataset and tier, hot-disk free space,
  with asset checks that warn when the hot disk runs low or a move was left unfinished.
- ``partitions_match_checksums``: an asset check on ``storage_health`` that verifies every partition copy
  against its manifest (``lake storage --verify``), run daily by the ``storage_verify`` job.
"""

import warnings
from typing import Optional

import dagster as dg

from lake_assets.metadata import OWNERS
from lake_resources.catalog.datasets import TIER_PREFERENCE
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.dagster_io import LakeResource
from lake_resources.lifecycle import (
    compact,
    format_storage,
    load_policy,
    migrate,
    parse_policy,
    storage_report,
)
from lake_resources.lifecycle.damage import verify_lake
from lake_resources.storage import TEMP_FILE_MIN_AGE_SECONDS


class MigrationConfig(dg.Config):
    start: Optional[str] = None  # first partition date to consider (YYYY-MM-DD); default: all
    end: Optional[str] = None  # last partition date to consider
    dataset: Optional[str] = None  # one dataset; default: every dataset
    to: Optional[str] = None  # hot | warm | cold: move every selected partition there (else: by policy)
    older_than: Optional[int] = None  # only partitions at least this many days old (to their final tier)
    as_of: Optional[str] = None  # "now" for ages (default LAKE_AS_OF, else today UTC)
    dry_run: bool = False


class CompactionConfig(dg.Config):
    dataset: Optional[str] = None  # default: datasets with compact: true in the policy
    symbol: Optional[str] = None
    month: Optional[str] = None  # YYYY-MM; default: every closed month with daily cold files
    as_of: Optional[str] = None
    force: bool = False  # compact even while some days of the month are still hot/warm
    dry_run: bool = False


def _table(rows: list[dict], columns: list[str], limit: int = 200) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("_none_")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"\n… and {len(rows) - limit} more")
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(
    group_name="lifecycle",
    kinds={"parquet", "duckdb", "s3"},
    owners=OWNERS,
    code_version="1",
    pool="warm_writer",  # moves write and delete in the warm tier (one DuckDB writer per file)
    description="Moves partitions between hot, warm and cold by the lifecycle policies (lifecycle.yaml): "
    "copy, verify row count and SHA-256 at the destination, then delete the source; then removes "
    f"leftovers of interrupted writes (temp files, incomplete S3 uploads) older than {TEMP_FILE_MIN_AGE_SECONDS / 3600:g} hours.",
)
def tier_migration(context: dg.AssetExecutionContext, config: MigrationConfig, lake: LakeResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    report = migrate(
        the_lake, load_policy(),
        datasets=[config.dataset] if config.dataset else None,
        older_than=config.older_than, to=config.to, start=config.start, end=config.end,
        as_of=config.as_of, dry_run=config.dry_run, log=context.log.info,
    )
    for move, error in report.failed:
        context.log.error(f"{move.dataset} {move.partition}: {error}")
    if report.temp_sweep_error:
        context.log.error(f"sweeping leftover temp files failed: {report.temp_sweep_error}")
    data = report.as_dict()
    temp = data["temp_files"] or {}
    metadata = {
        "as_of": report.as_of.isoformat(),
        "policy": report.policy_source,
        "dry_run": report.dry_run,
        "planned": len(report.planned),
        "moved": len(report.moved),
        "skipped": len(report.skipped),
        "failed": len(report.failed),
        "bytes_moved": dg.MetadataValue.int(report.bytes_moved),
        "moves": _table(data["moved"] if not report.dry_run else data["planned"],
                        ["dataset", "partition", "source", "target", "rows", "bytes"]),
        "skipped_partitions": _table(data["skipped"], ["dataset", "partition", "source", "target", "reason"]),
        # leftovers of interrupted writes older than the safe age: removed (listed only in a dry run)
        "temp_files_stale": temp.get("stale_files", 0),
        "temp_files_removed": temp.get("removed_files", 0),
        "temp_bytes_removed": dg.MetadataValue.int(temp.get("removed_bytes", 0)),
    }
    if report.temp_sweep_error:
        metadata["temp_sweep_error"] = report.temp_sweep_error
    if report.failed:
        metadata["failures"] = _table(data["failed"], ["dataset", "partition", "source", "target", "error"])
        raise dg.Failure(f"{len(report.failed)} partition(s) failed to move (each source copy kept)", metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="lifecycle",
    kinds={"parquet", "s3"},
    owners=OWNERS,
    code_version="1",
    pool="warm_writer",  # serialized with migrations, which also touch cold month files
    description="Compacts daily cold partitions of closed months into one Parquet file per symbol-month "
    "(sorted, exact duplicates dropped, zstd at a higher level), verified before the daily files go.",
)
def cold_compaction(context: dg.AssetExecutionContext, config: CompactionConfig, lake: LakeResource) -> dg.MaterializeResult:
    results = compact(
        lake.lake(), load_policy(),
        datasets=[config.dataset] if config.dataset else None,
        symbols=[config.symbol] if config.symbol else None,
        month=config.month, as_of=config.as_of, force=config.force, dry_run=config.dry_run,
        log=context.log.info,
    )
    rows = [r.as_dict() | {"days": len(r.days)} for r in results]
    done = [r for r in results if r.status == "compacted"]
    failed = [r for r in results if r.status == "failed"]
    metadata = {
        "compacted": len(done),
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": len(failed),
        "rows": sum(r.rows for r in done),
        "bytes_written": dg.MetadataValue.int(sum(r.bytes for r in done)),
        "input_bytes": dg.MetadataValue.int(sum(r.input_bytes for r in done)),
        "duplicates_dropped": sum(r.duplicates_dropped for r in done),
        "months": _table(rows, ["dataset", "symbol", "month", "status", "days", "rows", "bytes", "reason"]),
    }
    if failed:
        raise dg.Failure(f"{len(failed)} month(s) failed to compact (their daily files kept)", metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="lifecycle",
    kinds={"parquet", "duckdb", "s3"},
    owners=OWNERS,
    code_version="1",
    deps=[tier_migration, cold_compaction],
    description="Storage health: partitions, rows and bytes per dataset and tier, oldest/newest partition "
    "per tier, free space on the hot tier's disk (warning below hot.min_free_bytes), leftovers of "
    "interrupted writes (stale and recent temp files, incomplete S3 uploads).",
    check_specs=[
        dg.AssetCheckSpec("hot_disk_free_space", asset="storage_health",
                          description="Free space on the hot tier's disk is above hot.min_free_bytes."),
        dg.AssetCheckSpec("no_unfinished_moves", asset="storage_health",
                          description="No partition is held by two tiers (an interrupted move; re-run migration)."),
        dg.AssetCheckSpec("no_stale_temp_files", asset="storage_health",
                          description="No leftover of an interrupted write (temp file, incomplete S3 upload) older "
                                      "than the sweep age; the next migration run removes them."),
    ],
)
def storage_health(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    policy = load_policy()
    report = storage_report(lake.lake(), policy)
    totals = report.totals()
    disk = report.hot_disk
    metadata: dict = {
        "storage": dg.MetadataValue.md("```\n" + format_storage(report) + "\n```"),
        "by_dataset_and_tier": _table([u.as_dict() for u in report.usage],
                                      ["dataset", "tier", "partitions", "rows", "bytes", "oldest", "newest", "month_files"]),
        "hot/free_bytes": dg.MetadataValue.int(disk["free_bytes"]),
        "hot/free_warning": disk["warning"],
        "unfinished_moves": len(report.interrupted),
    }
    temp = report.temp_files.as_dict() if report.temp_files else None
    if temp is not None:
        for key in ("stale_files", "stale_bytes", "fresh_files", "fresh_bytes"):
            metadata[f"temp/{key}"] = dg.MetadataValue.int(temp[key])
    for tier in TIER_PREFERENCE:
        t = totals[tier.value]
        metadata[f"{tier.value}/bytes"] = dg.MetadataValue.int(t["bytes"])
        metadata[f"{tier.value}/partitions"] = dg.MetadataValue.int(t["partitions"])
        used = [u for u in report.usage if u.tier == tier.value and u.oldest]
        metadata[f"{tier.value}/oldest"] = min((u.oldest for u in used), default="-")
        metadata[f"{tier.value}/newest"] = max((u.newest for u in used), default="-")
    for u in report.usage:
        metadata[f"{u.dataset}/{u.tier}/bytes"] = dg.MetadataValue.int(u.bytes)
        metadata[f"{u.dataset}/{u.tier}/partitions"] = dg.MetadataValue.int(u.partitions)
    free_gib = disk["free_bytes"] / 2**30
    checks = [
        dg.AssetCheckResult(
            check_name="hot_disk_free_space",
            passed=not disk["warning"],
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{free_gib:.1f} GiB free on {disk['path']} (warning below {disk['min_free_bytes'] / 2**30:.1f} GiB)",
            metadata={"free_bytes": dg.MetadataValue.int(disk["free_bytes"]),
                      "min_free_bytes": dg.MetadataValue.int(disk["min_free_bytes"])},
        ),
        dg.AssetCheckResult(
            check_name="no_unfinished_moves",
            passed=not report.interrupted,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{len(report.interrupted)} partition(s) in more than one tier",
            metadata={"partitions": _table(report.interrupted, ["dataset", "partition", "tiers"])},
        ),
        dg.AssetCheckResult(
            check_name="no_stale_temp_files",
            passed=temp is not None and not temp["stale_files"],
            severity=dg.AssetCheckSeverity.WARN,
            description=(f"{temp['stale_files']} leftover(s) of interrupted writes ({temp['stale_bytes']:,} bytes) older "
                         f"than {temp['min_age_seconds'] / 3600:g} h; {temp['fresh_files']} recent (may be writes in progress)"
                         if temp is not None else f"leftovers could not be listed: {report.temp_files_error}"),
            metadata={"stale": _table(temp["stale"] if temp else [], ["store", "uri", "bytes", "age_seconds"])},
        ),
    ]
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


@dg.asset_check(
    asset=storage_health,
    name="partitions_match_checksums",
    description="Every copy of every partition, in every tier, matches its manifest (SHA-256 and row count): "
    "a truncated or overwritten Parquet file, or a corrupted warm block, fails this check naming the partition. "
    "Re-materialize a damaged partition to repair it.",
)
def partitions_match_checksums(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    report = verify_lake(lake.lake(), progress=context.log.info)
    for damage in report.damaged:
        context.log.error(f"damaged: {damage.describe()}")
    return dg.AssetCheckResult(
        passed=not report.damaged,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{report.checked:,} partition copies verified, {len(report.damaged)} damaged",
        metadata={"checked": dg.MetadataValue.int(report.checked), "damaged_count": len(report.damaged),
                  "damaged": _table([d.as_dict() for d in report.damaged],
                                    ["dataset", "partition", "tier", "uri", "detail"])},
    )


lifecycle_migration_job = dg.define_asset_job(
    "lifecycle_migration", selection=["tier_migration", "storage_health"],
    description="Move partitions between tiers by policy, then refresh storage health.",
)
lifecycle_compaction_job = dg.define_asset_job(
    "lifecycle_compaction", selection=["cold_compaction", "storage_health"],
    description="Compact closed months in the cold tier, then refresh storage health.",
)
storage_health_job = dg.define_asset_job("storage_health_job", selection=["storage_health"])
storage_verify_job = dg.define_asset_job(
    "storage_verify", selection=dg.AssetSelection.checks(partitions_match_checksums),
    description="Verify every partition copy against its manifest (as `lake storage --verify`).",
)

try:
    _policy = load_policy()
except LakeValidationError as exc:
    # A broken policy file must not take the whole code location down: the schedules use the
    # defaults and every lifecycle run fails with this message until the file is fixed.
    warnings.warn(f"lifecycle policy not loaded, schedules use the defaults: {exc}", stacklevel=1)
    _policy = parse_policy({})
_status = dg.DefaultScheduleStatus.RUNNING if _policy.schedules_running else dg.DefaultScheduleStatus.STOPPED

defs = dg.Definitions(
    assets=[tier_migration, cold_compaction, storage_health],
    asset_checks=[partitions_match_checksums],
    jobs=[lifecycle_migration_job, lifecycle_compaction_job, storage_health_job, storage_verify_job],
    schedules=[
        dg.ScheduleDefinition(name="lifecycle_migration_daily", job=lifecycle_migration_job,
                              cron_schedule=_policy.migration_cron, execution_timezone="UTC", default_status=_status),
        dg.ScheduleDefinition(name="lifecycle_compaction_daily", job=lifecycle_compaction_job,
                              cron_schedule=_policy.compaction_cron, execution_timezone="UTC", default_status=_status),
        dg.ScheduleDefinition(name="storage_health_hourly", job=storage_health_job,
                              cron_schedule=_policy.storage_health_cron, execution_timezone="UTC", default_status=_status),
        dg.ScheduleDefinition(name="storage_verify_daily", job=storage_verify_job,
                              cron_schedule=_policy.verify_cron, execution_timezone="UTC", default_status=_status),
    ],
)

"""Operating the lake: the daily schedule, declarative automation, freshness and the executor.

The domain packages define assets; this package decides how they run. :func:`with_operations` is
applied once to the merged ``Definitions`` (``lake_assets/definitions.py``), so automation and
freshness are set here, by mapping asset specs, without touching the domain modules:

- the roots of the daily ``date x symbol`` graph in the ``ingest`` group (``raw_dukascopy``, vendor
  pulls) are materialized by the ``daily_ingest`` schedule: yesterday, every configured symbol, one
  partition-range run;
- every other asset of the ``ingest``, ``canonical`` and ``research`` groups follows its parents with
  :func:`follow_upstream` (``eager()`` minus its latest-day restriction on parent updates, so updates
  of old partitions propagate too) unless its owner set a condition, evaluated by the
  ``lake_automation`` sensor;
- the daily datasets carry a time-window freshness policy, so a day that did not arrive shows as
  late in the UI;
- runs execute in one process (``in_process_executor``): a daily-graph run is a chain of steps over
  a partition range, so a process per step would only add start-up time; parallelism comes from
  concurrent runs (one per symbol range), and DuckDB writers are serialized by the ``warm_writer``
  pool.

``LAKE_SCHEDULES=running`` starts the schedule by default (the team deployment sets it; on a laptop
it stays off until switched on in the UI); ``LAKE_AUTOMATION=stopped`` does the same for the
automation sensor, which is on by default.
"""


import os
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import dagster as dg

from lake_assets.partitions import date_symbol_partitions, symbol_partitions

#: The domain groups, in the order the graph flows.
DOMAIN_GROUPS = ("ingest", "canonical", "research", "lifecycle")
#: Groups whose assets follow their upstream automatically (lifecycle moves data by its own policy).
AUTOMATED_GROUPS = ("ingest", "canonical", "research")
#: When the day before is ingested (UTC): after Dukascopy and the vendors have published it.
DAILY_INGEST_CRON = "15 1 * * *"
#: A daily dataset not materialized for this long is late (warn) / failing (fail).
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=50), warn_window=timedelta(hours=28))
DAILY_INGEST_JOB = "daily_ingest"
AUTOMATION_SENSOR = "lake_automation"
#: What an automated asset's description says about automation (shown in the UI).
AUTOMATION_NOTE = ("**Automation** (`lake_automation` sensor): re-materialized when the same partition of a "
                   "parent is updated, for any date (a backfill of old days re-runs what follows it); a new "
                   "day is filled in automatically; older days that were never materialized need a backfill.")


def _status(variable: str, default: str) -> str:
    value = (os.environ.get(variable) or default).strip().lower()
    if value in ("running", "on", "true", "1", "yes"):
        return "running"
    if value in ("stopped", "off", "false", "0", "no"):
        return "stopped"
    raise ValueError(f"{variable}={os.environ.get(variable)!r}: use running or stopped")


def is_daily(node) -> bool:
    """Is this asset (spec or graph node) partitioned by ``date x symbol``?"""
    return node.partitions_def == date_symbol_partitions


def daily_ingest_roots(asset_graph) -> list[dg.AssetKey]:
    """Daily ``ingest`` assets with no materializable upstream: what the schedule materializes."""
    roots = []
    for key in asset_graph.materializable_asset_keys:
        node = asset_graph.get(key)
        if node.group_name != "ingest" or not is_daily(node):
            continue
        if not any(asset_graph.has(p) and asset_graph.get(p).is_materializable for p in node.parent_keys):
            roots.append(key)
    return sorted(roots)


def automated_assets(asset_graph, roots: Iterable[dg.AssetKey]) -> list[dg.AssetKey]:
    """Assets that follow their upstream: the automated groups minus the scheduled roots."""
    root_set = set(roots)
    keys = []
    for key in asset_graph.materializable_asset_keys:
        node = asset_graph.get(key)
        if node.group_name in AUTOMATED_GROUPS and key not in root_set and node.parent_keys:
            keys.append(key)
    return sorted(keys)


def yesterday_range_tags(day: date | datetime) -> dict[str, str]:
    """Run tags for one run over ``day`` x every configured symbol (a rectangle of partitions)."""
    day = day.date() if isinstance(day, datetime) else day
    symbols = symbol_partitions.get_partition_keys()
    return {
        "dagster/asset_partition_range_start": f"{day.isoformat()}|{symbols[0]}",
        "dagster/asset_partition_range_end": f"{day.isoformat()}|{symbols[-1]}",
    }


def build_daily_ingest_schedule(roots: list[dg.AssetKey]) -> tuple:
    job = dg.define_asset_job(
        DAILY_INGEST_JOB,
        selection=dg.AssetSelection.assets(*roots),
        description="Vendor payloads of one day for every configured symbol (downstream follows by automation).",
        tags={"lake/launched_by": "daily_ingest schedule"},
    )

    @dg.schedule(
        name="daily_ingest_schedule",
        job=job,
        cron_schedule=DAILY_INGEST_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus(_status("LAKE_SCHEDULES", "stopped").upper()),
        description="Ingest yesterday (UTC) for every configured symbol, in one partition-range run.",
    )
    def daily_ingest_schedule(context: dg.ScheduleEvaluationContext):
        day = (context.scheduled_execution_time - timedelta(days=1)).date()
        return dg.RunRequest(run_key=day.isoformat(), tags=yesterday_range_tags(day))

    return job, daily_ingest_schedule


def follow_upstream() -> dg.AutomationCondition:
    """``eager()`` without its latest-time-window restriction on updates: a partition is requested when
    the same partition of any parent is updated, whatever its date (a backfill of old ``bars_1m`` days
    re-runs their roll-ups and features); a newly missing partition is filled in the latest day only
    (so switching automation on does not fill history). Never while a parent is running, nor while a
    parent has none of the partitions it maps to (``features`` reads the day before too, which is often a
    weekend: one present day is enough, where ``eager()`` would wait for both forever)."""
    present = ~dg.AutomationCondition.missing() | dg.AutomationCondition.will_be_requested()
    return (
        (
            (dg.AutomationCondition.in_latest_time_window() & dg.AutomationCondition.newly_missing())
            | dg.AutomationCondition.any_deps_updated()
        ).since_last_handled()
        & dg.AutomationCondition.all_deps_match(present).with_label("every parent present")
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("follow_upstream")


def _follow_upstream(spec: dg.AssetSpec) -> dg.AssetSpec:
    if spec.automation_condition is not None:
        return spec  # the owner chose a condition
    return spec.replace_attributes(
        automation_condition=follow_upstream(),
        description=(spec.description or "").rstrip() + "\n\n" + AUTOMATION_NOTE,
    )


def _daily_freshness(spec: dg.AssetSpec) -> dg.AssetSpec:
    return dg.apply_freshness_policy(spec, DAILY_FRESHNESS, overwrite_existing=False)


def with_operations(defs: dg.Definitions) -> dg.Definitions:
    """The merged definitions plus schedule, automation and freshness (see the module docstring)."""
    graph = defs.resolve_asset_graph()
    roots = daily_ingest_roots(graph)
    followers = automated_assets(graph, roots)
    daily = sorted(k for k in graph.materializable_asset_keys if is_daily(graph.get(k)))
    mapped = defs
    if followers:
        mapped = mapped.map_resolved_asset_specs(func=_follow_upstream, selection=followers)
    if daily:
        mapped = mapped.map_resolved_asset_specs(func=_daily_freshness, selection=daily)
    extra_jobs, extra_schedules, extra_sensors = [], [], []
    if roots:
        job, schedule = build_daily_ingest_schedule(roots)
        extra_jobs.append(job)
        extra_schedules.append(schedule)
    if followers:
        extra_sensors.append(
            dg.AutomationConditionSensorDefinition(
                AUTOMATION_SENSOR,
                target=dg.AssetSelection.groups(*AUTOMATED_GROUPS),
                default_status=dg.DefaultSensorStatus(_status("LAKE_AUTOMATION", "running").upper()),
                minimum_interval_seconds=60,
                description="Materializes what follows updated data, for any date (follow_upstream conditions).",
            )
        )
    return dg.Definitions.merge(
        mapped, dg.Definitions(jobs=extra_jobs, schedules=extra_schedules, sensors=extra_sensors)
    )


#: Merged by ``lake_assets/definitions.py`` with the domain packages: the executor for every job.
defs = dg.Definitions(executor=dg.in_process_executor)

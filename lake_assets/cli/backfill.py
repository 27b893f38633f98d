"""``lake backfill``: a real Dagster asset backfill, followed (and run without a daemon) until it ends."""

from __future__ import annotations

import logging
import time

from lake_assets.cli.common import (
    REPO_ROOT,
    SILENT_RUN_CONFIG,
    Say,
    _print,
    calendar_days,
    parse_symbols,
    prepare_dagster_home,
    quiet_dagster,
)
from lake_assets.cli.watch import (
    DEFAULT_STALL_TIMEOUT_S,
    HEARTBEAT_MAX_AGE_S,
    daemon_running,
    describe_stall,
    fail_runs_with_dead_workers,
    failure_line,
    free_slots_of_ended_runs,
    outside_message,
)


# ------------------------------------------------------------------------------------------
# lake backfill
# ------------------------------------------------------------------------------------------
def _resolve_selection(selection: str, asset_graph) -> list:
    """Comma-separated asset keys or Dagster selection clauses (``group:canonical``, ``key:bars_*``)."""
    import dagster as dg

    from lake_resources.catalog.validation import LakeValidationError

    combined = None
    for item in (s.strip() for s in selection.split(",") if s.strip()):
        sel = dg.AssetSelection.from_string(item) if any(c in item for c in ":* +") else dg.AssetSelection.assets(item)
        combined = sel if combined is None else combined | sel
    if combined is None:
        raise LakeValidationError("empty --select")
    try:
        keys = combined.resolve(asset_graph)
    except Exception as exc:
        raise LakeValidationError(f"--select {selection!r}: {exc}") from None
    if not keys:
        raise LakeValidationError(f"--select {selection!r} matches no asset")
    return [k for k in asset_graph.toposorted_asset_keys if k in keys]


def _is_date_symbol(pdef) -> bool:
    import dagster as dg

    return isinstance(pdef, dg.MultiPartitionsDefinition) and {d.name for d in pdef.partitions_defs} == {"date", "symbol"}


def run_backfill(settings, *, start: str, end: str, symbols: str,
                 selection: str = "raw_dukascopy,ticks,bars_1m,bars_5m,bars_1h,bars_1d",
                 wait: bool = True, say: Say = _print, poll_seconds: float = 1.0, ui_port: int = 3000,
                 stall_timeout: float = DEFAULT_STALL_TIMEOUT_S, heartbeat_max_age: float = HEARTBEAT_MAX_AGE_S) -> int:
    """Launch a real Dagster asset backfill of ``selection`` over ``start..end`` x ``symbols`` and
    follow it; exit status 0 when every targeted partition materialized.

    The daemon of ``lake ui`` does the work only while its heartbeat is fresh; otherwise (or once it
    stops) this command runs the daemon's iterations itself. Pool slots held by runs that ended are
    freed. After ``stall_timeout`` seconds without progress it says what is stuck and returns 1."""
    quiet_dagster()
    import dagster as dg
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster._daemon.monitoring import execute_run_monitoring_iteration
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    from lake_resources.catalog.validation import LakeValidationError, parse_date

    prepare_dagster_home(settings)
    first, last = parse_date(start), parse_date(end)
    if last < first:
        raise LakeValidationError(f"--end {last} is before --start {first}")
    if stall_timeout <= 0:
        raise LakeValidationError(f"--stall-timeout must be > 0 seconds, got {stall_timeout:g}")
    symbol_list = parse_symbols(symbols, settings)
    days = calendar_days(first, last)
    logger = logging.getLogger("lake.backfill")
    logger.setLevel(logging.WARNING)

    with dg.DagsterInstance.get() as instance, WorkspaceProcessContext(
        instance, WorkspaceFileTarget([str(REPO_ROOT / "workspace.yaml")]), code_server_log_level="WARNING"
    ) as workspace:
        request = workspace.create_request_context()
        errors = list(request.code_location_errors())
        if errors:
            raise SystemExit(f"lake backfill: the code location failed to load:\n{errors[0].to_string()}")
        asset_graph = request.asset_graph
        keys = _resolve_selection(selection, asset_graph)
        not_daily = [k.to_user_string() for k in keys if not _is_date_symbol(asset_graph.get(k).partitions_def)]
        if not_daily:
            raise LakeValidationError(f"lake backfill covers the date x symbol graph; not partitioned that way: {', '.join(not_daily)}")
        pdef = asset_graph.get(keys[0]).partitions_def
        valid_days = set(pdef.get_partitions_def_for_dimension("date").get_partition_keys())
        outside = [d.isoformat() for d in days if d.isoformat() not in valid_days]
        if outside:
            raise LakeValidationError(outside_message(settings, outside))
        partition_keys = [f"{d.isoformat()}|{s}" for s in symbol_list for d in days]
        from lake_assets.partitions import symbol_has_asset

        # no Dukascopy partitions for vendor-only symbols (they would be empty); see DUKASCOPY_ONLY_ASSETS
        key_partitions = {k: [p for p in partition_keys if symbol_has_asset(k.to_user_string(), p.split("|")[1])]
                          for k in keys}
        subset = AssetGraphSubset(partitions_subsets_by_asset_key={
            k: asset_graph.get(k).partitions_def.subset_with_partition_keys(key_partitions[k])
            for k in keys if key_partitions[k]
        })
        if not any(key_partitions.values()):
            raise LakeValidationError(f"--symbols {','.join(symbol_list)}: vendor symbol(s) have no partitions of "
                                      f"{', '.join(k.to_user_string() for k in keys)} (Dukascopy data only); "
                                      "select bars_1m and what follows it")
        backfill_id = make_new_backfill_id()
        cursor = instance.event_log_storage.get_maximum_record_id()
        backfill = PartitionBackfill.from_asset_graph_subset(
            backfill_id=backfill_id, backfill_timestamp=time.time(),
            tags={"lake/launched_by": "lake backfill"}, dynamic_partitions_store=instance,
            asset_graph_subset=subset, title=f"lake backfill {first}..{last} {','.join(symbol_list)}",
            description=f"{', '.join(k.to_user_string() for k in keys)} over {first}..{last} x {', '.join(symbol_list)}",
            run_config=SILENT_RUN_CONFIG,
        )
        instance.add_backfill(backfill)
        say(f"backfill {backfill_id}: {len(keys)} asset(s) x {len(partition_keys)} partition(s) "
            f"({first} → {last} x {', '.join(symbol_list)})")
        say(f"  assets: {' → '.join(k.to_user_string() for k in keys)}")
        say(f"  in the UI: http://127.0.0.1:{ui_port}/runs/b/{backfill_id}?tab=partitions")
        external_daemon = daemon_running(instance, heartbeat_max_age)
        if not wait:
            if not external_daemon:
                say("  no daemon is running on this instance: start `lake ui` (or dagster-daemon) to process it")
            return 0
        say("  processed by the running daemon" if external_daemon
            else "  no daemon running: this command runs the backfill and run-queue iterations itself")
        queue_daemon = QueuedRunCoordinatorDaemon(interval_seconds=poll_seconds)
        t0 = time.monotonic()
        shown = ""
        last_shown = last_progress = t0
        progress_mark = None
        while True:
            if external_daemon and not daemon_running(instance, heartbeat_max_age):
                external_daemon = False
                say("  the daemon stopped heart-beating: this command takes over the backfill and run-queue iterations")
            for run_id, pid in fail_runs_with_dead_workers(instance):
                say(f"  run {run_id[:8]}: its worker process {pid} is gone; marked failed")
            for run_id, status, count in free_slots_of_ended_runs(instance):
                say(f"  freed {count} pool slot(s) held by run {run_id[:8]}, which ended {status}")
            if not external_daemon:
                for _ in execute_backfill_iteration(workspace, logger):
                    pass
                if instance.run_monitoring_enabled:
                    for _ in execute_run_monitoring_iteration(workspace, logger):
                        pass
                for _ in queue_daemon.run_iteration(workspace):
                    pass
            current = instance.get_backfill(backfill_id)
            runs = instance.get_runs(filters=dg.RunsFilter.for_backfill(backfill_id))
            by_status: dict[str, int] = {}
            for run in runs:
                by_status[run.status.value.lower()] = by_status.get(run.status.value.lower(), 0) + 1
            done = {k: len(instance.get_materialized_partitions(k, after_cursor=cursor) & set(key_partitions[k]))
                    for k in keys}
            line = (f"runs: {', '.join(f'{n} {s}' for s, n in sorted(by_status.items())) or 'none yet'} | "
                    + " ".join(f"{k.to_user_string()} {n}/{len(key_partitions[k])}" for k, n in done.items()))
            now = time.monotonic()
            if line != shown or now - last_shown > 15:
                say(f"  [{now - t0:6.1f}s] {line}")
                shown, last_shown = line, now
            if current.status in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED,
                                  BulkActionStatus.COMPLETED, BulkActionStatus.FAILED, BulkActionStatus.CANCELED):
                break
            mark = (current.status, tuple(sorted((r.run_id, r.status) for r in runs)), tuple(done.values()),
                    instance.event_log_storage.get_maximum_record_id())
            if mark != progress_mark:
                progress_mark, last_progress = mark, now
            elif now - last_progress > stall_timeout:
                say(f"lake backfill: no progress for {stall_timeout:g}s (--stall-timeout); what is stuck:")
                for fact in describe_stall(instance, current, runs, external_daemon):
                    say(f"  {fact}")
                say(f"  the backfill stays recorded: cancel it in the UI (http://127.0.0.1:{ui_port}/runs/b/{backfill_id}) "
                    "or run `lake backfill` again once the cause is fixed")
                return 1
            time.sleep(poll_seconds)
        complete = all(n == len(key_partitions[k]) for k, n in done.items())
        ok = current.status in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED) and complete
        say(f"backfill {backfill_id}: {current.status.value} in {time.monotonic() - t0:.1f}s, "
            f"{len(runs)} run(s)" + ("" if ok else " — see the UI for the failed runs"))
        if current.error is not None:
            say(f"  error: {settings.redact(current.error.message.strip())[:400]}")
        for run in runs:
            if run.status == dg.DagsterRunStatus.FAILURE:
                say(f"  run {run.run_id[:8]} failed: {failure_line(instance, run.run_id, settings)}")
        for _ in free_slots_of_ended_runs(instance):  # nothing left held by this backfill's runs
            pass
        return 0 if ok else 1

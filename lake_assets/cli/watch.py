"""Watching a backfill: is a daemon really there, are pool slots held by dead runs, is anything moving.

Used by ``lake backfill`` (``operate.run_backfill``):

- :func:`daemon_running` judges a daemon by a *fresh* heartbeat. Dagster's own ``healthy`` flag
  tolerates a heartbeat up to 30 minutes old, so a ``lake ui`` stopped minutes ago still looked alive
  and the command waited for it forever.
- :func:`free_slots_of_ended_runs` releases the concurrency-pool slots (``warm_writer``) still held by
  runs that ended, however they ended (a SIGKILLed run worker is marked failed but keeps its slot, and
  every later warm write would queue behind it). The daemon does this too when ``run_monitoring`` is on
  (``free_slots_after_run_end_seconds`` in ``dagster.yaml``); ``lake backfill`` does it itself when it
  drives the daemon's iterations in-process.
- :func:`fail_runs_with_dead_workers` marks failed a run still "started" whose worker process is gone
  (the run worker and the code server that watched it were killed together, so nobody reported it);
  only on a SQLite instance, whose runs are on this host.
- :func:`describe_stall` says what a backfill that stopped moving is waiting for; :func:`failure_line`
  why a run failed, in one line; :func:`outside_message` how to add days before the lake's first day.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

#: Daemons ``lake backfill`` relies on: the backfill daemon and the run queue.
BACKFILL_DAEMONS = ("BACKFILL", "QUEUED_RUN_COORDINATOR")
#: A heartbeat older than this means the daemon is gone (it beats every 30 s).
HEARTBEAT_MAX_AGE_S = 75.0
#: Default bound on waiting without progress (runs, statuses and materializations unchanged).
DEFAULT_STALL_TIMEOUT_S = 1200.0


def heartbeat_ages(instance, now: float | None = None) -> dict[str, float]:
    """Seconds since each daemon type's last heartbeat on ``instance``."""
    now = time.time() if now is None else now
    try:
        beats = instance.get_daemon_heartbeats()
    except Exception:  # storage without daemon heartbeats
        return {}
    return {name: now - beat.timestamp for name, beat in beats.items()}


def daemon_running(instance, max_age: float = HEARTBEAT_MAX_AGE_S) -> bool:
    """Is a ``dagster-daemon`` (e.g. from ``lake ui``) heart-beating on this instance right now?"""
    ages = heartbeat_ages(instance)
    return all(name in ages and ages[name] <= max_age for name in BACKFILL_DAEMONS)


def free_slots_of_ended_runs(instance) -> list[tuple[str, str, int]]:
    """Free the pool slots held by runs in a finished state: [(run_id, status, slots freed)]."""
    from dagster._core.storage.dagster_run import FINISHED_STATUSES, RunsFilter

    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    run_ids = storage.get_concurrency_run_ids()
    if not run_ids:
        return []
    freed = []
    for record in instance.get_run_records(filters=RunsFilter(run_ids=list(run_ids), statuses=FINISHED_STATUSES)):
        run = record.dagster_run
        count = storage.free_concurrency_slots_for_run(run.run_id)
        freed.append((run.run_id, run.status.value, count or 0))
    return freed


def _worker_pid(instance, run_id: str) -> int | None:
    """The pid the run's worker recorded ("Executing steps in process (pid: N)")."""
    from dagster._core.events import DagsterEventType

    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event is not None and event.pid:
            return int(event.pid)
    return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"  # a zombie has exited; only its parent has not reaped it yet
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def fail_runs_with_dead_workers(instance) -> list[tuple[str, int]]:
    """Mark failed the started runs whose worker process is gone: [(run_id, pid)]. Local SQLite
    instances only (their run workers run on this host); elsewhere a pid means nothing here."""
    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    failed = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        run = record.dagster_run
        pid = _worker_pid(instance, run.run_id)
        if pid is None or _alive(pid):
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status != DagsterRunStatus.STARTED:
            continue  # it ended meanwhile
        instance.report_run_failed(current, message=f"run worker process {pid} is gone (killed?); marked failed by lake backfill")
        failed.append((run.run_id, pid))
    return failed


def _pool_lines(instance, run_ids: set[str]) -> list[str]:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    lines = []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        waiting = sorted({s.run_id for s in info.pending_steps if s.assigned_timestamp is None} & run_ids)
        holders = sorted({s.run_id for s in info.claimed_slots})
        if not waiting and not (holders and run_ids):
            continue
        described = []
        for run_id in holders:
            run = instance.get_run_by_id(run_id)
            described.append(f"{run_id[:8]} ({run.status.value if run else 'unknown run'})")
        lines.append(f"pool {pool}: limit {info.limit}, held by {', '.join(described) or 'nobody'}"
                     + (f"; waiting: {', '.join(r[:8] for r in waiting)}" if waiting else ""))
    return lines


def describe_stall(instance, backfill, runs: Iterable, external_daemon: bool) -> list[str]:
    """What a backfill that made no progress is waiting for, one fact per line."""
    runs = list(runs)
    lines = [f"backfill {backfill.backfill_id} is {backfill.status.value}"]
    ages = heartbeat_ages(instance)
    if external_daemon:
        beat = ", ".join(f"{n} {ages[n]:.0f}s ago" for n in BACKFILL_DAEMONS if n in ages) or "none"
        lines.append(f"the daemon of this instance was expected to process it (last heartbeats: {beat})")
    else:
        lines.append("no daemon on this instance: this command ran the backfill and run-queue iterations itself")
    if not runs:
        lines.append("no run was launched for it")
    for run in runs:
        if not run.is_finished:
            lines.append(f"run {run.run_id[:8]} is {run.status.value}")
    lines += _pool_lines(instance, {r.run_id for r in runs})
    return lines


def outside_message(settings, outside: list[str]) -> str:
    """Days outside the daily partitions: say which bound and how to move it."""
    if outside[0] < settings.start_date:
        return (f"day(s) {outside[0]}..{min(outside[-1], settings.start_date)} are before this lake's first day "
                f"LAKE_START_DATE={settings.start_date} ({settings.source('LAKE_START_DATE')}); to add them: "
                f"{settings.how_to_set('LAKE_START_DATE', outside[0])}")
    return f"day(s) {outside[0]}..{outside[-1]} are after yesterday (UTC): a day is ingested once it is complete"


def failure_line(instance, run_id: str, settings) -> str:
    """One line saying why a run failed (the innermost error of its first failed step), with a hint
    naming the variable to set when the Dukascopy feed could not be reached."""
    from dagster._core.events import DagsterEventType

    error, said = None, ""
    for event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
        for record in instance.all_logs(run_id, of_type=event_type):
            data = record.dagster_event.event_specific_data if record.dagster_event else None
            error = getattr(data, "error", None)
            said = said or (record.user_message or "").strip()
            if error is not None:
                break
        if error is not None:
            break
    if error is None:  # e.g. a run whose worker was killed: only the failure's message
        return settings.redact(said.splitlines()[0][:300]) if said else "no error recorded (see the run in the UI)"
    while error.cause is not None:
        error = error.cause
    text = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name
    text = settings.redact(re.sub(r"^[\w.]+(Error|Exception): ", "", text))
    # the base of the feed in use (LAKE_DUKASCOPY_FEED): the JSON data API or the BI5 datafeed
    variable = "LAKE_DUKASCOPY_API" if settings.dukascopy_feed == "api" else "LAKE_DUKASCOPY_URL"
    feed = settings.dukascopy_api if settings.dukascopy_feed == "api" else settings.dukascopy_url
    if feed and feed.split("://")[-1].rstrip("/") in text:
        return (f"cannot read the Dukascopy feed {feed} ({variable}, {settings.source(variable)}): "
                f"{text[:160]}; set it to a reachable mirror, directory or s3:// bucket: "
                f"{settings.how_to_set(variable, '<url>')}")
    return text[:300]

"""``lake backfill`` never waits forever: a run worker SIGKILLed while it holds the ``warm_writer``
pool slot does not block the next backfill, a daemon that stopped heart-beating is not waited for,
and a backfill that stops moving ends with a statement of what is stuck."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.settings import LakeSettings
from lake_resources.storage import Lake
from lake_tests.reliability.conftest import (
    DAYS,
    REPO_ROOT,
    child_env,
    failure_messages,
    lake_resources_for,
    materialize,
)
from lake_tests.reliability.test_backfill_restart import _descendants, _kill_leftovers

BIN = Path(sys.executable).parent
SELECTION = ["raw_dukascopy", "ticks", "bars_1m"]
#: Bounds on waiting for a backfill (not performance assertions: a hung backfill must not hang CI).
RUN_TIMEOUT_S = 300


def _backfill_args(*extra: str) -> list[str]:
    return [str(BIN / "lake"), "backfill", "--start", DAYS[0], "--end", DAYS[-1], "--symbols", "EURUSD",
            "--select", ",".join(SELECTION), *extra]


def _instance(dagster_home: Path):
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))


def _prepared_home(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "lake"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    return home, dagster_home


def _kill_when_slot_held(proc: subprocess.Popen, instance, victims) -> None:
    """SIGKILL the processes ``victims()`` names once a run holds the ``warm_writer`` slot (frozen
    first with SIGSTOP, so the slot is certainly held when they die)."""
    pids: list[int] = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        assert proc.poll() is None, f"the backfill ended before its bars_1m step took the slot:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "the bars_1m step never took the warm_writer slot"
        pids = pids or [p for p in victims() if _is_run_worker(p)]
        if pids and _holders(instance):
            pids = victims()
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            break
        time.sleep(0.01)
    held_by = _holders(instance)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert held_by, "the processes were killed after the slot was released: scenario not reached"


def _holders(instance) -> set[str]:
    """Runs holding a ``warm_writer`` slot."""
    try:
        return {s.run_id for s in instance.event_log_storage.get_concurrency_info("warm_writer").claimed_slots}
    except Exception:  # the pool's tables are made on first use
        return set()


def _is_run_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    # the code server starts each run in a multiprocessing child (DefaultRunLauncher)
    return b"execute_run" in cmdline or b"spawn_main" in cmdline


@pytest.fixture(scope="module")
def clean_bars(tmp_path_factory, dagster_defs, three_day_datafeed) -> dict[str, object]:
    """Each day's ``bars_1m`` after a clean single-run backfill of the range into a fresh lake."""
    home = tmp_path_factory.mktemp("clean-bars") / "lake"
    result = materialize(dagster_defs, SELECTION, lake_resources_for(home, three_day_datafeed),
                         start=f"{DAYS[0]}|EURUSD", end=f"{DAYS[-1]}|EURUSD")
    assert result.success, failure_messages(result)
    lake = Lake(LakeSettings(home=home))
    return {d: lake.read_partition("bars_1m", (("symbol", "EURUSD"), ("date", d))) for d in DAYS}


@pytest.mark.data_loss
def test_run_worker_killed_holding_the_warm_pool_slot_does_not_block_the_next_backfill(
        tmp_path, three_day_datafeed, clean_range_shas, clean_bars):
    """The run worker of ``lake backfill`` is SIGKILLed while its ``bars_1m`` step holds the
    ``warm_writer`` pool slot: that backfill fails, and a second ``lake backfill`` of the same range
    completes unattended (the dead run's slot is freed), with ticks and bars equal to a clean run."""
    home, dagster_home = _prepared_home(tmp_path)
    env = child_env({"LAKE_HOME": str(home), "LAKE_DUKASCOPY_URL": str(three_day_datafeed), "LAKE_DUKASCOPY_FEED": "datafeed",
                     "DAGSTER_HOME": str(dagster_home)})
    instance = _instance(dagster_home)
    started: list[int] = []
    first = subprocess.Popen(_backfill_args(), env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        _kill_when_slot_held(first, instance, lambda: [p for p in _descendants(first.pid) if _is_run_worker(p)])
        out, _ = first.communicate(timeout=RUN_TIMEOUT_S)
        assert first.returncode == 1, out
        assert "COMPLETED_FAILED" in out, out
        assert re.search(r"run \w{8} failed: \S", out), out  # one line saying why, no traceback
        assert "Traceback" not in out, out
        started += _descendants(first.pid)

        second = subprocess.run(_backfill_args("--stall-timeout", "120"), env=env, cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "COMPLETED_SUCCESS" in second.stdout
        # nothing is left holding the pool
        assert instance.event_log_storage.get_concurrency_info("warm_writer").claimed_slots == []
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        _kill_leftovers(started)
        instance.dispose()

    lake = Lake(LakeSettings(home=home))
    ticks = dataset_spec("ticks")
    for day in DAYS:
        part = ticks.partition(symbol="EURUSD", date=day)
        ok, detail = lake.verify(ticks, part)
        assert ok, detail
        assert lake.manifest(ticks, part, "hot")["sha256"] == clean_range_shas[day], day
        bars = lake.read_partition("bars_1m", (("symbol", "EURUSD"), ("date", day)))
        assert bars.equals(clean_bars[day]), day


@pytest.mark.data_loss
def test_backfill_killed_with_its_run_worker_and_code_server_does_not_block_the_next_one(
        tmp_path, three_day_datafeed, clean_range_shas, clean_bars):
    """``lake backfill``, its code server and its run worker are SIGKILLed together while the run holds
    the ``warm_writer`` slot, so nobody reports the run: it stays "started" with the slot. The next
    ``lake backfill`` notices the worker is gone, marks the run failed, frees the slot and completes,
    with ticks and bars equal to a clean run."""
    home, dagster_home = _prepared_home(tmp_path)
    env = child_env({"LAKE_HOME": str(home), "LAKE_DUKASCOPY_URL": str(three_day_datafeed), "LAKE_DUKASCOPY_FEED": "datafeed",
                     "DAGSTER_HOME": str(dagster_home)})
    instance = _instance(dagster_home)
    first = subprocess.Popen(_backfill_args(), env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _kill_when_slot_held(first, instance, lambda: [first.pid, *_descendants(first.pid)])
        first.wait(timeout=60)
        [stuck] = instance.get_runs()
        assert stuck.status.value == "STARTED" and _holders(instance) == {stuck.run_id}  # the scenario

        second = subprocess.run(_backfill_args("--stall-timeout", "120"), env=env, cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"run {stuck.run_id[:8]}: its worker process" in second.stdout, second.stdout
        assert instance.get_run_by_id(stuck.run_id).status.value == "FAILURE"
        assert _holders(instance) == set()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        instance.dispose()
    lake = Lake(LakeSettings(home=home))
    ticks = dataset_spec("ticks")
    for day in DAYS:
        part = ticks.partition(symbol="EURUSD", date=day)
        assert lake.manifest(ticks, part, "hot")["sha256"] == clean_range_shas[day], day
        assert lake.read_partition("bars_1m", (("symbol", "EURUSD"), ("date", day))).equals(clean_bars[day]), day


def _heartbeat(instance, age_seconds: float) -> None:
    from dagster._daemon.types import DaemonHeartbeat

    for daemon_type in ("BACKFILL", "QUEUED_RUN_COORDINATOR", "SENSOR", "SCHEDULER"):
        instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - age_seconds, daemon_type, "gone-ui", None))


def test_backfill_after_the_ui_stopped_does_not_wait_for_its_stale_daemon(tmp_path, three_day_datafeed):
    """A daemon heartbeat ten minutes old (``lake ui`` stopped; Dagster itself calls it healthy for
    30 minutes) does not count as a running daemon: ``lake backfill`` runs the backfill itself."""
    home, dagster_home = _prepared_home(tmp_path)
    instance = _instance(dagster_home)
    _heartbeat(instance, 600)
    instance.dispose()
    env = child_env({"LAKE_HOME": str(home), "LAKE_DUKASCOPY_URL": str(three_day_datafeed), "LAKE_DUKASCOPY_FEED": "datafeed",
                     "DAGSTER_HOME": str(dagster_home)})
    args = [str(BIN / "lake"), "backfill", "--start", DAYS[0], "--end", DAYS[0], "--symbols", "EURUSD",
            "--select", "raw_dukascopy,ticks"]
    try:
        done = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"lake backfill waited for a daemon that is gone:\n{exc.stdout}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "this command runs the backfill" in done.stdout and "COMPLETED_SUCCESS" in done.stdout


def test_backfill_that_makes_no_progress_says_what_is_stuck_and_exits(tmp_path, three_day_datafeed):
    """A fresh heartbeat from a daemon that does not process backfills: ``lake backfill`` waits for it
    only ``--stall-timeout`` seconds without progress, then names what is stuck and exits 1."""
    home, dagster_home = _prepared_home(tmp_path)
    instance = _instance(dagster_home)
    _heartbeat(instance, 0)
    instance.dispose()
    env = child_env({"LAKE_HOME": str(home), "LAKE_DUKASCOPY_URL": str(three_day_datafeed), "LAKE_DUKASCOPY_FEED": "datafeed",
                     "DAGSTER_HOME": str(dagster_home)})
    args = [str(BIN / "lake"), "backfill", "--start", DAYS[0], "--end", DAYS[0], "--symbols", "EURUSD",
            "--select", "raw_dukascopy,ticks", "--stall-timeout", "5"]
    done = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "no progress for 5s" in out, out
    assert "is REQUESTED" in out and "no run was launched for it" in out, out
    assert "last heartbeats: BACKFILL" in out, out
    assert "Traceback" not in out + done.stderr

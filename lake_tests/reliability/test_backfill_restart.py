"""The process driving a backfill (``lake backfill``: backfill and run-queue daemon iterations) is
SIGKILLed mid-backfill; a restarted Dagster daemon picks the backfill up from the instance and
finishes it, with exactly a clean run's content."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.settings import LakeSettings
from lake_resources.storage import Lake
from lake_tests.reliability.conftest import DAYS, REPO_ROOT, child_env

BIN = Path(sys.executable).parent
TICKS = dataset_spec("ticks")
SELECTION = ["raw_dukascopy", "ticks"]
#: Bounds on waiting for the backfill (not performance assertions: a hung backfill must not hang CI).
START_TIMEOUT_S = 180
FINISH_TIMEOUT_S = 240


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def _descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        kids = _children(stack.pop())
        found += kids
        stack += kids
    return found


def _kill_leftovers(pids: list[int]) -> None:
    """SIGKILL the processes this test started (by pid) that outlived the scenario."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.data_loss
def test_backfill_survives_its_daemon_being_killed_and_restarted(tmp_path, three_day_datafeed, clean_range_shas):
    """``lake backfill`` of ``raw_dukascopy`` and ``ticks`` over three days is SIGKILLed once its run
    is launched; the backfill stays recorded as requested in the Dagster instance; a restarted
    ``dagster-daemon`` resumes and completes it: every partition materialized exactly once more, and
    the stored ticks equal a clean run (SHA-256)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    home = tmp_path / "lake"
    dagster_home = home / "dagster"
    env = child_env({"LAKE_HOME": str(home), "LAKE_DUKASCOPY_URL": str(three_day_datafeed),
                     "LAKE_DUKASCOPY_FEED": "datafeed",
                     "DAGSTER_HOME": str(dagster_home)})
    started: list[int] = []
    backfill = subprocess.Popen(
        [str(BIN / "lake"), "backfill", "--start", DAYS[0], "--end", DAYS[-1], "--symbols", "EURUSD",
         "--select", ",".join(SELECTION)],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    daemon = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        transcript = []
        for line in backfill.stdout:
            transcript.append(line)
            if "runs: 1 start" in line:  # the backfill's run is launched: kill its daemon now
                started += _descendants(backfill.pid)
                backfill.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "".join(transcript)
        assert backfill.wait(timeout=30) == -signal.SIGKILL, "".join(transcript)

        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))
        [interrupted] = instance.get_backfills()
        assert interrupted.status.value == "REQUESTED"  # recorded, not lost with the process

        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
                                  env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        while instance.get_backfill(interrupted.backfill_id).status.value == "REQUESTED":
            assert time.monotonic() < deadline, "the restarted daemon did not finish the backfill"
            time.sleep(0.5)
        finished = instance.get_backfill(interrupted.backfill_id)
        assert finished.status.value == "COMPLETED_SUCCESS"
        targets = {f"{day}|EURUSD" for day in DAYS}
        for key in SELECTION:
            assert instance.get_materialized_partitions(dg.AssetKey(key)) >= targets, key
        instance.dispose()
    finally:
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=10)
        if backfill.poll() is None:
            backfill.kill()
            backfill.wait()
        _kill_leftovers(started)

    lake = Lake(LakeSettings(home=home))
    for day in DAYS:
        part = TICKS.partition(symbol="EURUSD", date=day)
        ok, detail = lake.verify(TICKS, part)
        assert ok, detail
        assert lake.manifest(TICKS, part, "hot")["sha256"] == clean_range_shas[day], day

"""The README's plain-Dagster example, run as written (bash, from the repo root) on a fresh lake and
on a lake that already holds a different version of the day: the numbers it promises hold on both,
and the run is recorded in the lake's own Dagster instance (the one ``lake ui`` shows)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from lake_resources.settings import LakeSettings
from lake_resources.storage import Lake
from lake_tests.reliability.conftest import failure_messages, lake_resources_for, materialize

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- README-plain-dagster:"
KEY = "2019-02-04|EURUSD"
DAY_TICKS = 136_741


def readme_block() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    after = text[text.index(MARKER):]
    start = after.index("```bash\n") + len("```bash\n")
    return after[start:after.index("```", start)]


def run_readme(home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "DAGSTER_", "AWS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["LAKE_HOME"] = str(home)  # where the user's shell points (the README sets nothing else)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block()], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def check_lake(home: Path, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert str(DAY_TICKS) in done.stdout, done.stdout[-3000:]
    lake = Lake(LakeSettings(home=home))
    part = (("symbol", "EURUSD"), ("date", "2019-02-04"))
    assert lake.read_partition("ticks", part).height == DAY_TICKS
    assert lake.read_partition("bars_1m", part).height == 1440
    # the run is in the lake's instance, where `lake ui` looks (not in a throwaway one)
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home / "dagster")))
    try:
        runs = instance.get_runs()
        assert runs and runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert KEY in instance.get_materialized_partitions(dg.AssetKey("bars_1m"))
    finally:
        instance.dispose()


def test_readme_plain_dagster_example_on_a_fresh_lake(tmp_path, datafeed_dir):
    home = tmp_path / "lake"
    check_lake(home, run_readme(home))


def test_readme_plain_dagster_example_on_a_lake_that_already_has_the_day(tmp_path, datafeed_dir):
    """The lake holds an older version of 2019-02-04 EURUSD (its first six hours only, as raw files,
    ticks and bars): the README's commands still give the whole real day."""
    part_feed = tmp_path / "six-hours"
    src = datafeed_dir / "EURUSD/2019/01/04"
    dst = part_feed / "EURUSD/2019/01/04"
    dst.mkdir(parents=True)
    for hour in range(6):
        shutil.copyfile(src / f"{hour:02d}h_ticks.bi5", dst / f"{hour:02d}h_ticks.bi5")
    home = tmp_path / "lake"
    from lake_assets.definitions import defs

    before = materialize(defs, ["raw_dukascopy", "ticks", "bars_1m"], lake_resources_for(home, part_feed), key=KEY)
    assert before.success, failure_messages(before)
    lake = Lake(LakeSettings(home=home))
    old_ticks = lake.read_partition("ticks", (("symbol", "EURUSD"), ("date", "2019-02-04"))).height
    assert 0 < old_ticks < DAY_TICKS
    check_lake(home, run_readme(home))


def test_plain_dagster_without_dagster_home_says_its_runs_are_thrown_away(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "DAGSTER_", "AWS_"))}
    env["LAKE_HOME"] = str(tmp_path / "lake")
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "asset", "list", "-m", "lake_assets.definitions"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bars_1m" in done.stdout
    assert "DAGSTER_HOME is not set" in done.stderr and 'eval "$(lake env)"' in done.stderr, done.stderr[-2000:]

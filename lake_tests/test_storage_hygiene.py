"""Storage hygiene on real parts: leftovers of SIGKILLed writes are swept once stale (never data,
manifests or a write in progress), and a re-materialization and a tier migration of the same partition
never interleave (the partition lock), whichever starts first.

Writers and movers are real child processes (``lake_tests/storage_child.py``) that SIGKILL or SIGSTOP
themselves at a precise step; the cold tier is the real S3 server where the scenario is about S3."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import dagster as dg
import polars as pl
import pytest

from lake_resources.catalog.datasets import Tier, dataset_spec
from lake_resources.client import LakeClient
from lake_resources.lifecycle import compact_month, copies_of, format_storage, parse_policy, storage_report
from lake_resources.settings import LakeSettings
from lake_resources.storage import (
    TEMP_FILE_MIN_AGE_SECONDS,
    Lake,
    LakeStorageError,
    encode_parquet,
    is_temp_name,
    prepare_frame,
    sha256,
)
from lake_resources.transforms.bars import minute_bars
from lake_tests.conftest import REPO_ROOT
from lake_tests.reliability.child import fixture_ticks

TICKS = dataset_spec("ticks")
PART = TICKS.partition(symbol="EURUSD", date="2019-02-04")  # the partition storage_child writes
BARS_PART = dataset_spec("bars_1m").partition(symbol="EURUSD", date="2019-02-04")
CHILD = [sys.executable, "-m", "lake_tests.storage_child"]
WAITING = "waiting for another write, move or compaction"


@pytest.fixture(scope="module")
def versions() -> dict:
    """The fixture partition's "old" (its first hours) and "new" (the whole real day) ticks, with the
    SHA-256 each is stored under."""
    out = {}
    for version in ("old", "new"):
        df = prepare_frame(TICKS, fixture_ticks(version))
        out[version] = {"frame": df, "sha256": sha256(encode_parquet(df)), "rows": df.height}
    return out


def _env(settings: LakeSettings) -> dict[str, str]:
    """A child's environment: this one without lake settings, plus the lake of ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "AWS_", "DAGSTER_"))}
    env |= {"LAKE_HOME": str(settings.home_abs), "PYTHONPATH": str(REPO_ROOT)}
    if settings.cold_is_s3:
        env |= {"LAKE_S3_ENDPOINT": settings.s3_endpoint, "LAKE_S3_BUCKET": settings.s3_bucket,
                "AWS_ACCESS_KEY_ID": settings.aws_access_key_id, "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key}
    return env


def _run(settings: LakeSettings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(CHILD + list(args), env=_env(settings), cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=240)


def _lake_files(lake: Lake) -> dict[str, str]:
    """SHA-256 of every file or object in the hot and cold tiers and the raw zone, leftovers aside."""
    out = {}
    for store in (lake.hot, lake.cold, lake.raw):
        if store.is_local:
            for dirpath, _dirs, files in os.walk(store.root):
                for name in files:
                    if not is_temp_name(name):
                        path = os.path.join(dirpath, name)
                        with open(path, "rb") as fh:
                            out[path] = sha256(fh.read())
        elif store.fs.exists(store.root):
            for path in store.fs.find(store.root):
                out[path] = sha256(store.fs.cat_file(path))
    return out


def _age_everything(lake: Lake, hours: float, keep_fresh: set[str] = frozenset()) -> None:
    """Move the mtime of every local file of the lake ``hours`` back (as if that much time passed),
    except ``keep_fresh``."""
    then = time.time() - hours * 3600
    for store in (lake.hot, lake.cold, lake.raw):
        if store.is_local:
            for dirpath, _dirs, files in os.walk(store.root):
                for name in files:
                    path = os.path.join(dirpath, name)
                    if path not in keep_fresh:
                        os.utime(path, (then, then))


# ------------------------------------------------------------------------------------------
# Leftovers of killed writes
# ------------------------------------------------------------------------------------------
def test_sweep_removes_only_stale_temp_files_of_killed_writes_never_data_or_fresh_ones(lake_settings, versions):
    lake = Lake(lake_settings)
    lake.write(TICKS, PART, versions["old"]["frame"])
    other = TICKS.partition(symbol="EURUSD", date="2019-02-05")
    lake.write(TICKS, other, versions["old"]["frame"], tier="cold")  # local cold tier
    lake.put_raw("dukascopy", "EURUSD", "2019-02-04", "00h_ticks.bi5", b"raw payload as received")

    # A hot write of the new version SIGKILLed with its data complete in the temp file, not yet renamed;
    # a cold write SIGKILLed just before its first manifest rename.
    for tier, kill in (("hot", "replace:part-0.parquet:1:before"), ("cold", "replace:_manifest.json:1:before")):
        killed = _run(lake_settings, "write", "--tier", tier, "--kill", kill)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    found = lake.find_temp_files()
    assert found.stale == [] and len(found.fresh) == 2
    by_store = {t.store: t for t in found.fresh}
    hot_temp, cold_temp = by_store[lake.hot.label], by_store[lake.cold.label]
    assert os.path.dirname(hot_temp.uri) == lake.hot.dir_of(TICKS, PART)
    assert os.path.basename(hot_temp.uri).startswith(".part-0.parquet.tmp-")
    assert os.path.basename(cold_temp.uri).startswith("._manifest.json.tmp-")
    with open(hot_temp.uri, "rb") as fh:  # the whole new version, stranded under a name no reader lists
        assert sha256(fh.read()) == versions["new"]["sha256"]
    assert hot_temp.bytes == os.path.getsize(hot_temp.uri)
    before = _lake_files(lake)
    assert len(before) == 5  # hot: data + (staged) manifest; cold: the other partition's data + manifest; raw: one file

    # Fresh leftovers may be writes in progress: the sweep leaves them.
    assert lake.sweep_temp_files().removed == []
    assert os.path.exists(hot_temp.uri) and os.path.exists(cold_temp.uri)

    # Seven hours on for everything but the cold leftover (old data is never removed for its age).
    _age_everything(lake, 7, keep_fresh={cold_temp.uri})
    dry = lake.sweep_temp_files(dry_run=True)
    assert [t.uri for t in dry.stale] == [hot_temp.uri] and dry.removed == [] and os.path.exists(hot_temp.uri)
    swept = lake.sweep_temp_files()
    assert [t.uri for t in swept.removed] == [hot_temp.uri]
    assert swept.as_dict()["removed_bytes"] == hot_temp.bytes
    assert not os.path.exists(hot_temp.uri)
    assert os.path.exists(cold_temp.uri)  # fresh: untouched
    assert _lake_files(lake) == before  # every data file, manifest and raw file, byte for byte

    # The lake reads as before the kills, and a re-run of the killed write converges.
    assert lake.verify(TICKS, PART)[0]
    assert lake.read_partition(TICKS, PART).equals(versions["old"]["frame"])
    assert lake.get_raw("dukascopy", "EURUSD", "2019-02-04", "00h_ticks.bi5") == b"raw payload as received"
    assert lake.write(TICKS, PART, versions["new"]["frame"]).sha256 == versions["new"]["sha256"]
    assert lake.read_partition(TICKS, PART).equals(versions["new"]["frame"])


def test_sweep_aborts_a_stale_incomplete_s3_upload_of_a_killed_writer(s3_lake_settings):
    lake = Lake(s3_lake_settings)
    lake.ensure_bucket()
    lake.write(TICKS, PART, fixture_ticks("old").head(5000), tier="cold")
    lake.put_raw("dukascopy", "EURUSD", "2019-02-04", "00h_ticks.bi5", b"raw payload as received")
    before = _lake_files(lake)

    # 110 MiB go up as a multipart upload (s3fs: 50 MiB parts); the writer dies ~60 MB into it.
    killed = _run(s3_lake_settings, "put-raw", "--bytes", str(110 * 2**20), "--kill", "sent:60000000:mid")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    key = f"{s3_lake_settings.s3_prefix}/raw/vendor/symbol=EURUSD/date=2019-02-04/big-pull.json.zst"
    bucket = s3_lake_settings.s3_bucket

    def uploads() -> list[str]:
        listed = lake.raw.fs.call_s3("list_multipart_uploads", Bucket=bucket)
        return [u["Key"] for u in listed.get("Uploads", [])]

    assert uploads() == [key]  # invisible to readers, but its parts are stored
    assert _lake_files(lake) == before

    found = lake.find_temp_files()
    assert found.stale == [] and [t.uri for t in found.fresh] == [f"s3://{bucket}/{key}"]
    assert found.fresh[0].upload_id and found.fresh[0].bytes >= 0
    assert lake.sweep_temp_files().removed == [] and uploads() == [key]  # may still be uploading

    later = time.time() + TEMP_FILE_MIN_AGE_SECONDS + 60
    swept = lake.sweep_temp_files(now=later)
    assert [t.uri for t in swept.removed] == [f"s3://{bucket}/{key}"]
    assert uploads() == []
    assert _lake_files(lake) == before  # data, manifest and raw objects untouched
    assert lake.verify(TICKS, PART)[0]
    assert lake.get_raw("vendor", "EURUSD", "2019-02-04", "big-pull.json.zst") is None  # never published


# A vendor pull written into the lake's landing area, SIGKILLed just before the rename that publishes it.
_KILLED_LANDING_WRITER = """
from datetime import datetime, timezone
from lake_resources.settings import LakeSettings
from lake_resources.sources.vendor import make_pull, write_pull
from lake_tests.reliability.child import install_kill

install_kill("replace:late.json:1:before")
payload = make_pull("sample", "headlines", "AAPL", "2019-02-04", datetime(2019, 2, 5, 1, tzinfo=timezone.utc),
                    [{"ts": "2019-02-04T15:00:00Z", "headline": "late news"}])
write_pull(LakeSettings.from_env().landing_root, payload, vendor="sample", feed="headlines", symbol="AAPL",
           day="2019-02-04", pull_id="late")
"""


def test_a_killed_landing_write_is_never_a_pull_and_is_reported_and_swept_once_stale(lake_settings):
    from lake_assets.ingest.sensors import scan_landing
    from lake_resources.generate import generate

    lake = Lake(lake_settings)
    landing = lake_settings.landing_root
    generate(landing, ["AAPL"], "2019-02-04", "2019-02-04", seed=3)
    pulls, _ = scan_landing(str(landing))
    complete = {p: p.read_bytes() for p in landing.rglob("*") if p.is_file()}
    killed = subprocess.run(CHILD[:1] + ["-c", _KILLED_LANDING_WRITER], env=_env(lake_settings), cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    [temp] = [p for p in landing.rglob("*") if p.is_file() and p not in complete]
    assert temp.name.startswith(".late.json.tmp-") and b"late news" in temp.read_bytes()
    assert scan_landing(str(landing)) == (pulls, [])  # the sensor sees the same pulls, and nothing to complain about
    fresh = storage_report(lake).temp_files
    assert fresh.stale == [] and [(t.store, t.uri) for t in fresh.fresh] == [(lake.landing.label, str(temp))]
    assert lake.sweep_temp_files().removed == [] and temp.exists()

    stat = temp.stat()
    os.utime(temp, (stat.st_atime, stat.st_mtime - 7 * 3600))  # seven hours on
    report = storage_report(lake)
    assert [t.uri for t in report.temp_files.stale] == [str(temp)] and "1 stale" in format_storage(report)
    assert [t.uri for t in lake.sweep_temp_files().removed] == [str(temp)]
    assert {p: p.read_bytes() for p in landing.rglob("*") if p.is_file()} == complete  # every pull, byte for byte


def test_storage_health_reports_stale_temp_files_and_the_migration_run_sweeps_them(lake_settings, versions,
                                                                                     monkeypatch, capsys):
    from lake_assets import cli
    from lake_assets.lifecycle import cold_compaction, storage_health, tier_migration
    from lake_resources.dagster_io import LakeResource

    monkeypatch.delenv("LAKE_LIFECYCLE", raising=False)
    lake = Lake(lake_settings)
    lake.write(TICKS, PART, versions["old"]["frame"])
    killed = _run(lake_settings, "write", "--kill", "replace:part-0.parquet:1:before")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    [leftover] = lake.find_temp_files().fresh
    _age_everything(lake, 7)
    before = _lake_files(lake)

    report = storage_report(lake)
    temp = report.as_dict()["temp_files"]
    assert (temp["stale_files"], temp["stale_bytes"], temp["fresh_files"]) == (1, leftover.bytes, 0)
    assert "1 stale" in format_storage(report) and "the next `lake migrate` removes them" in format_storage(report)
    monkeypatch.setenv("LAKE_HOME", str(lake_settings.home_abs))
    monkeypatch.delenv("LAKE_S3_ENDPOINT", raising=False)
    assert cli.main(["storage", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["temp_files"]["stale_files"] == 1

    assets = [tier_migration, cold_compaction, storage_health]
    resources = {"lake": LakeResource(home=str(lake_settings.home_abs))}

    def run(selection, config=None):
        result = dg.materialize(assets, selection=selection, resources=resources, instance=dg.DagsterInstance.ephemeral(),
                                run_config={"ops": {"tier_migration": {"config": config}}} if config else None)
        assert result.success
        return result

    health = run(["storage_health"])
    [check] = [c for c in health.get_asset_check_evaluations() if c.check_name == "no_stale_temp_files"]
    assert not check.passed and check.severity is dg.AssetCheckSeverity.WARN
    assert health.asset_materializations_for_node("storage_health")[0].metadata["temp/stale_bytes"].value == leftover.bytes

    dry = run(["tier_migration"], {"dataset": "bars_1m", "dry_run": True})
    meta = dry.asset_materializations_for_node("tier_migration")[0].metadata
    assert (meta["temp_files_stale"].value, meta["temp_files_removed"].value) == (1, 0) and os.path.exists(leftover.uri)

    # The daily migration job: moves (none due here), sweeps, then storage health is clean again.
    done = run(["tier_migration", "storage_health"], {"dataset": "bars_1m"})
    meta = done.asset_materializations_for_node("tier_migration")[0].metadata
    assert (meta["temp_files_removed"].value, meta["temp_bytes_removed"].value) == (1, leftover.bytes)
    assert not os.path.exists(leftover.uri)
    assert all(c.passed for c in done.get_asset_check_evaluations() if c.check_name == "no_stale_temp_files")
    assert _lake_files(lake) == before
    assert lake.verify(TICKS, PART)[0]


# ------------------------------------------------------------------------------------------
# Re-materialization vs. a migration of the same partition
# ------------------------------------------------------------------------------------------
def _start(settings: LakeSettings, *args: str) -> subprocess.Popen:
    return subprocess.Popen(CHILD + list(args), env=_env(settings), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_stopped(proc: subprocess.Popen) -> None:
    """Until the child stopped itself at its stop point (SIGSTOP), or fail with what it said."""
    _pid, status = os.waitpid(proc.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        proc.returncode = os.waitstatus_to_exitcode(status)
        pytest.fail(f"the child ended (status {proc.returncode}) before its stop point: {proc.stderr.read()[-3000:]}")


def _wait_for_lock_wait(proc: subprocess.Popen) -> None:
    """Until the child logged that it waits for the partition's lock, or fail if it ended without."""
    said = []
    for line in proc.stderr:
        said.append(line)
        if WAITING in line:
            return
    pytest.fail("the second process never waited for the partition: it ran into the first one's change:\n"
                + "".join(said)[-3000:] + proc.stdout.read()[-2000:])


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _cleanup(*procs: subprocess.Popen | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _seed(settings: LakeSettings, versions: dict) -> Lake:
    """The old version of the partition in hot, and its minute bars in warm (so its ticks may leave hot)."""
    lake = Lake(settings)
    lake.ensure_bucket()
    assert lake.write(TICKS, PART, versions["old"]["frame"]).sha256 == versions["old"]["sha256"]
    lake.write("bars_1m", BARS_PART, minute_bars(versions["old"]["frame"]))
    return lake


def _assert_only(lake: Lake, tier: Tier, version: dict) -> None:
    """One copy, in ``tier``, of ``version``: its manifest matches the data, reads return it once."""
    fresh = Lake(lake.settings)  # a later process's view
    assert [(c.tier, c.sha256, c.rows) for c in copies_of(fresh, TICKS, PART)] == [(tier, version["sha256"], version["rows"])]
    ok, detail = fresh.verify(TICKS, PART)
    assert ok, detail
    assert fresh.read_partition(TICKS, PART).equals(version["frame"])
    assert LakeClient(lake=fresh).read("ticks", symbols="EURUSD").height == version["rows"]
    assert storage_report(fresh, datasets=["ticks"]).interrupted == []
    leftovers = fresh.find_temp_files()
    assert leftovers.stale == [] and leftovers.fresh == []


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_write_during_a_move_waits_for_it_and_the_newer_version_wins(backend, lake_settings, request, versions):
    settings = request.getfixturevalue("s3_lake_settings") if backend == "s3" else lake_settings
    lake = _seed(settings, versions)
    mover = writer = None
    try:
        # The move has copied the old version to cold, verified it and checked the hot copy's manifest:
        # it is about to delete the hot copy when a re-materialization of the partition starts.
        mover = _start(settings, "migrate", "--to", "cold", "--stop-before-delete")
        _wait_stopped(mover)
        writer = _start(settings, "write", "--version", "new")
        _wait_for_lock_wait(writer)
        os.kill(mover.pid, signal.SIGCONT)
        moved = _finish(mover)
        written = _finish(writer)
    finally:
        _cleanup(mover, writer)
    assert moved["failed"] == [] and [(m["source"], m["target"], m["sha256"]) for m in moved["moved"]] == [
        ("hot", "cold", versions["old"]["sha256"])]
    assert written["sha256"] == versions["new"]["sha256"]
    # The move finished first; the write then replaced the partition and removed the moved old copy.
    _assert_only(lake, Tier.HOT, versions["new"])


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_move_during_a_write_waits_for_it_and_moves_the_new_version(backend, lake_settings, request, versions):
    settings = request.getfixturevalue("s3_lake_settings") if backend == "s3" else lake_settings
    lake = _seed(settings, versions)
    mover = writer = None
    try:
        # The re-materialization has renamed its new data file into place; its manifest is not final
        # yet when a migration of the same partition starts.
        writer = _start(settings, "write", "--version", "new", "--stop-after-data")
        _wait_stopped(writer)
        mover = _start(settings, "migrate", "--to", "cold")
        _wait_for_lock_wait(mover)
        os.kill(writer.pid, signal.SIGCONT)
        written = _finish(writer)
        moved = _finish(mover)
    finally:
        _cleanup(mover, writer)
    assert written["sha256"] == versions["new"]["sha256"]
    assert moved["failed"] == [] and [(m["source"], m["target"], m["sha256"]) for m in moved["moved"]] == [
        ("hot", "cold", versions["new"]["sha256"])]
    _assert_only(lake, Tier.COLD, versions["new"])


def test_a_writer_that_cannot_get_the_partition_fails_clearly_and_changes_nothing(lake_settings, versions):
    lake = Lake(lake_settings)
    lake.write(TICKS, PART, versions["old"]["frame"])
    holding, release = threading.Event(), threading.Event()

    def hold():  # another writer or move holding the partition (a thread: flock is per open file)
        with Lake(lake_settings).partition_lock(TICKS, [PART]):
            holding.set()
            release.wait(120)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(60)
        lake.locks.timeout = 0.2
        with pytest.raises(LakeStorageError, match="ticks symbol=EURUSD, date=2019-02-04: another write, move or "
                                                   "compaction of it has held its lock") as err:
            lake.write(TICKS, PART, versions["new"]["frame"])
        assert "nothing was changed" in str(err.value)
    finally:
        release.set()
        holder.join(60)
    assert lake.read_partition(TICKS, PART).equals(versions["old"]["frame"]) and lake.verify(TICKS, PART)[0]
    # Once the holder is done, the write goes through; the same thread may re-enter its own lock.
    with lake.partition_lock(TICKS, [PART]):
        assert lake.write(TICKS, PART, versions["new"]["frame"]).sha256 == versions["new"]["sha256"]



def test_a_partition_lock_held_by_a_killed_process_is_free_at_once(lake_settings, versions):
    lake = _seed(lake_settings, versions)
    writer = None
    try:
        # Another process stopped in the middle of re-materializing the partition, holding its lock.
        writer = _start(lake_settings, "write", "--version", "new", "--stop-after-data")
        _wait_stopped(writer)
        lake.locks.timeout = 0.2
        with pytest.raises(LakeStorageError, match="has held its lock"):
            lake.write(TICKS, PART, versions["old"]["frame"])
        os.kill(writer.pid, signal.SIGKILL)  # no clean-up runs: the kernel frees the lock with the process
        writer.wait(timeout=30)
    finally:
        _cleanup(writer)
    assert lake.write(TICKS, PART, versions["old"]["frame"]).sha256 == versions["old"]["sha256"]
    assert lake.verify(TICKS, PART)[0]

class _SetOn(logging.Handler):
    """Sets ``event`` when a log record contains ``needle``."""

    def __init__(self, needle: str, event: threading.Event):
        super().__init__()
        self.needle, self.event = needle, event

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.event.set()


def test_write_during_a_compaction_of_its_month_waits_for_it_and_wins(lake_settings, versions, monkeypatch, caplog):
    from lake_resources.lifecycle import compaction

    old = versions["old"]["frame"]
    next_day = old.with_columns(pl.col("ts") + pl.duration(days=1, time_unit="ns"))
    days = {"2019-02-04": old, "2019-02-05": next_day}
    lake = Lake(lake_settings)
    for day, frame in days.items():
        lake.write(TICKS, TICKS.partition(symbol="EURUSD", date=day), frame, tier="cold")

    # Compaction paused right after publishing the month file, before removing the daily files.
    paused, resume = threading.Event(), threading.Event()
    real_step = compaction._step

    def step(name: str) -> None:
        if name == "compact:after_manifest":
            paused.set()
            resume.wait(120)
        real_step(name)

    monkeypatch.setattr(compaction, "_step", step)  # where compact_month calls it
    waiting = threading.Event()
    caplog.set_level(logging.INFO, logger="lake_resources.storage")
    signal_handler = _SetOn(WAITING, waiting)
    logging.getLogger("lake_resources.storage").addHandler(signal_handler)
    results, errors = [], []

    def run(fn):
        try:
            results.append(fn())
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    policy = parse_policy({"compaction": {"zstd_level": 3}})
    compactor = threading.Thread(target=run, args=(lambda: compact_month(lake, "ticks", "EURUSD", "2019-02", policy),))
    writer = threading.Thread(target=run, args=(lambda: Lake(lake_settings).write(TICKS, PART, versions["new"]["frame"]),))
    try:
        compactor.start()
        assert paused.wait(120)
        writer.start()  # a re-materialization of 2019-02-04 into hot
        assert waiting.wait(120), "the write did not wait for the compaction of its month"
    finally:
        resume.set()
        compactor.join(120)
        writer.join(120)
        logging.getLogger("lake_resources.storage").removeHandler(signal_handler)
    assert errors == []
    fresh = Lake(lake_settings)
    assert {dict(l.partition)["date"]: (l.tier, l.month) for l in fresh.locate(TICKS)} == {
        "2019-02-04": (Tier.HOT, None), "2019-02-05": (Tier.COLD, "2019-02")}
    assert set(fresh.cold.month_file(TICKS, "EURUSD", "2019-02").dates) == {"2019-02-05"}  # the new write took its day
    assert fresh.cold.list(TICKS) == []
    assert fresh.read_partition(TICKS, PART).equals(versions["new"]["frame"])
    for day in days:
        assert fresh.verify(TICKS, TICKS.partition(symbol="EURUSD", date=day))[0]
    assert LakeClient(lake=fresh).read("ticks", symbols="EURUSD").height == versions["new"]["rows"] + next_day.height

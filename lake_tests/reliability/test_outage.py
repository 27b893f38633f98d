"""The S3 server stopped during a run and restarted; the hot tier's disk full.

The S3 scenarios stop the suite's own S3 server (never the session-wide one other tests use) and
start it again on the same ports with the same data, as an outage of a real deployment would.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from datetime import date
from pathlib import Path

import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.settings import LakeSettings
from lake_resources.storage import DATA_FILE, MANIFEST_FILE, Lake, LakeStorageError
from lake_tests.reliability.conftest import (
    DAYS,
    failure_messages,
    lake_resources_for,
    materialize,
)

TICKS = dataset_spec("ticks")
PART = TICKS.partition(symbol="EURUSD", date="2019-02-04")
#: Generous bound on the time to fail with the S3 server down: retries are bounded, not endless.
OUTAGE_FAILURE_BOUND_S = 90


def _objects(fs, bucket: str) -> list[str]:
    fs.invalidate_cache()
    return sorted(fs.find(bucket))


def _data_objects_are_whole(lake: Lake, bucket: str, datafeed: Path) -> None:
    """Every object in the bucket is whole: raw files equal their source bytes, partitions verify."""
    for key in _objects(lake.cold.fs, bucket):
        name = key.rsplit("/", 1)[-1]
        assert not name.startswith("."), f"temporary object visible: {key}"
        if "/raw/dukascopy/" in key:
            symbol = key.split("symbol=")[1].split("/")[0]
            day = date.fromisoformat(key.split("date=")[1].split("/")[0])
            source = datafeed / symbol / f"{day.year:04d}" / f"{day.month - 1:02d}" / f"{day.day:02d}" / name
            assert lake.cold.fs.cat_file(key) == source.read_bytes(), f"{key} differs from {source}"
        elif name == DATA_FILE and "/cold/" in key:
            dataset = key.split("/cold/")[1].split("/")[0]
            rel = key.split(f"/cold/{dataset}/")[1].rsplit("/", 1)[0]
            from lake_resources.catalog.datasets import parse_partition_path

            ok, detail = lake.verify(dataset, parse_partition_path(dataset_spec(dataset), rel), "cold")
            assert ok, detail
        else:
            assert name in (DATA_FILE, MANIFEST_FILE) or "/raw/" in key, f"unexpected object {key}"


@pytest.fixture(scope="module")
def s3_down_write(tmp_path_factory, own_s3, fixture_versions) -> dict:
    """Old version stored in the cold tier; the S3 server stopped; the new version written (and
    failing); the server restarted; the lake inspected; the write re-run."""
    if own_s3.proc is None or own_s3.proc.poll() is not None:
        own_s3.start()
    settings = LakeSettings.from_env({"LAKE_HOME": str(tmp_path_factory.mktemp("s3-down") / "lake"),
                                      **own_s3.env("rel-s3-down")})
    lake = Lake(settings)
    lake.ensure_bucket()
    lake.write(TICKS, PART, fixture_versions["old"]["frame"], tier="cold")
    own_s3.stop()
    error: BaseException | None = None
    try:
        t0 = time.monotonic()
        try:
            lake.write(TICKS, PART, fixture_versions["new"]["frame"], tier="cold")
        except Exception as exc:  # noqa: BLE001 - recorded; the tests judge it
            error = exc
        elapsed = time.monotonic() - t0
    finally:
        own_s3.start()
    restarted = Lake(settings)
    outcome = {"error": error, "elapsed": elapsed, "verify_after": restarted.verify(TICKS, PART, "cold"),
               "rows_after": restarted.read_partition(TICKS, PART).height}
    outcome["rerun_sha"] = restarted.write(TICKS, PART, fixture_versions["new"]["frame"], tier="cold").sha256
    outcome["objects"] = [k.rsplit("/", 1)[-1] for k in _objects(restarted.cold.fs, settings.s3_bucket) if "/cold/ticks/" in k]
    return outcome


def test_s3_down_write_fails_fast_with_an_error_naming_the_endpoint(s3_down_write, own_s3):
    """S3 server stopped before a cold-tier write: the write fails after bounded retries with a
    ``LakeStorageError`` naming the cold tier and the endpoint (not a raw client exception)."""
    error = s3_down_write["error"]
    assert error is not None, "the write succeeded with the server down"
    assert isinstance(error, LakeStorageError), f"{type(error).__name__}: {error}"
    assert own_s3.endpoint in str(error) and "cold tier" in str(error), str(error)
    assert s3_down_write["elapsed"] < OUTAGE_FAILURE_BOUND_S


@pytest.mark.data_loss
def test_s3_down_write_keeps_the_previous_version_and_rerun_succeeds(s3_down_write, fixture_versions):
    """After the failed write and a restart of the S3 server, the previous version is intact and
    verified; the re-run succeeds with a clean run's checksum; the bucket holds only whole objects."""
    ok, detail = s3_down_write["verify_after"]
    assert ok, detail
    assert s3_down_write["rows_after"] == fixture_versions["old"]["rows"]
    assert s3_down_write["rerun_sha"] == fixture_versions["new"]["sha256"]
    assert sorted(s3_down_write["objects"]) == sorted([MANIFEST_FILE, DATA_FILE])


@pytest.mark.data_loss
def test_s3_stopped_mid_run_fails_cleanly_and_rerun_converges(tmp_path, own_s3, own_bucket_env, dagster_defs,
                                                              three_day_datafeed, clean_range_shas, monkeypatch):
    """S3 server stopped in the middle of a three-day backfill run (raw zone on S3): the run fails
    naming the endpoint, the day already done stays whole, no half-written object is visible; after a
    restart the re-run succeeds and every day equals a clean run (SHA-256)."""
    home = tmp_path / "lake"
    resources = lake_resources_for(home, three_day_datafeed, own_bucket_env)
    real_put_raw = Lake.put_raw

    def put_raw_with_outage(self, source, symbol, day, filename, data):
        if str(day) == DAYS[1] and own_s3.proc is not None:
            own_s3.stop()  # the outage starts as the second day's first raw file goes out
        return real_put_raw(self, source, symbol, day, filename, data)

    monkeypatch.setattr(Lake, "put_raw", put_raw_with_outage)
    t0 = time.monotonic()
    try:
        failed = materialize(dagster_defs, ["raw_dukascopy", "ticks"], resources,
                             start=f"{DAYS[0]}|EURUSD", end=f"{DAYS[-1]}|EURUSD")
        elapsed = time.monotonic() - t0
    finally:
        monkeypatch.setattr(Lake, "put_raw", real_put_raw)
        own_s3.start()
    assert not failed.success
    messages = "\n".join(failure_messages(failed))
    assert own_s3.endpoint in messages and "raw zone" in messages, messages
    assert elapsed < OUTAGE_FAILURE_BOUND_S
    settings = LakeSettings.from_env({"LAKE_HOME": str(home), **own_bucket_env})
    lake = Lake(settings)
    _data_objects_are_whole(lake, settings.s3_bucket, three_day_datafeed)

    rerun = materialize(dagster_defs, ["raw_dukascopy", "ticks"], lake_resources_for(home, three_day_datafeed, own_bucket_env),
                        start=f"{DAYS[0]}|EURUSD", end=f"{DAYS[-1]}|EURUSD")
    assert rerun.success, failure_messages(rerun)
    lake = Lake(settings)
    for day in DAYS:
        part = TICKS.partition(symbol="EURUSD", date=day)
        assert lake.verify(TICKS, part)[0]
        assert lake.manifest(TICKS, part, "hot")["sha256"] == clean_range_shas[day], day
    _data_objects_are_whole(lake, settings.s3_bucket, three_day_datafeed)
    raw_days = {k.split("date=")[1][:10] for k in _objects(lake.cold.fs, settings.s3_bucket) if "/raw/dukascopy/" in k}
    assert raw_days == set(DAYS)


# ---------------------------------------------------------------------------------------------
# Disk full
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def full_disk_at(directory: Path, size_kib: int):
    """A real, tiny tmpfs mounted at ``directory`` (we are root on these machines). Where mounting is
    not allowed, ENOSPC is simulated instead: writes of temp files under ``directory`` past
    ``size_kib`` fail with errno 28, as the kernel's would."""
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(directory)],
                             capture_output=True).returncode == 0
    if mounted:
        try:
            yield "tmpfs"
        finally:
            if subprocess.run(["umount", str(directory)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(directory)], capture_output=True)
        return
    import builtins

    real_open = builtins.open
    budget = {"left": size_kib * 1024}

    class Limited:
        def __init__(self, fh):
            self._fh = fh

        def write(self, data):
            if len(data) > budget["left"]:
                raise OSError(28, "No space left on device")
            budget["left"] -= len(data)
            return self._fh.write(data)

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

    def limited_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return Limited(fh) if "w" in mode and str(path).startswith(str(directory)) else fh

    builtins.open = limited_open
    try:
        yield "simulated"
    finally:
        builtins.open = real_open


@pytest.mark.data_loss
def test_hot_tier_disk_full_fails_cleanly_and_keeps_the_previous_version(tmp_path, dagster_defs, datafeed_dir, fixture_versions):
    """The hot tier's disk is full (a real 400 KiB tmpfs): materializing ``ticks`` fails with an error
    saying the hot tier has no space left; the previous version stays readable and verified, and no
    temp file is left using the space."""
    home = tmp_path / "lake"
    settings = LakeSettings(home=home)
    with full_disk_at(settings.hot_root, 400) as how:
        lake = Lake(settings)
        lake.write(TICKS, PART, fixture_versions["old"]["frame"])
        result = materialize(dagster_defs, ["raw_dukascopy", "ticks"], lake_resources_for(home, datafeed_dir))
        assert not result.success, f"the full day should not fit on the {how} disk"
        messages = "\n".join(failure_messages(result))
        assert "hot tier" in messages and "no space left on device" in messages.lower(), messages
        assert str(settings.hot_root) in messages  # says which disk
        after = Lake(settings)
        assert after.verify(TICKS, PART)[0]
        assert after.read_partition(TICKS, PART).equals(fixture_versions["old"]["frame"])
        leftovers = [p.name for p in settings.hot_root.rglob(".*tmp*")]
        assert leftovers == []


@pytest.mark.data_loss
def test_warm_tier_disk_full_at_commit_keeps_the_real_error_and_the_data(tmp_path, fixture_versions):
    """The warm tier's disk is full when DuckDB writes its WAL at COMMIT (a real 4 MiB tmpfs, filled
    to within 64 KiB): the error says "No space left on device" for the warm file (not "cannot
    rollback - no transaction is active"); the partitions stored before are intact, and once space is
    freed the same write succeeds."""
    import os
    from datetime import timedelta

    import polars as pl

    home = tmp_path / "lake"
    with full_disk_at(home, 4096) as how:
        if how != "tmpfs":
            pytest.skip("needs a real tmpfs (mount not permitted here): DuckDB writes below Python's open()")
        lake = Lake(LakeSettings(home=home))
        frame = fixture_versions["old"]["frame"]
        lake.write(TICKS, PART, frame, tier="warm")
        stats = os.statvfs(home)
        (home / "ballast").write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - 64 * 1024))
        other = TICKS.partition(symbol="EURUSD", date="2019-02-05")
        next_day = frame.with_columns(pl.col("ts") + timedelta(days=1))
        with pytest.raises(LakeStorageError) as failed:
            lake.write(TICKS, other, next_day, tier="warm")
        message = str(failed.value)
        assert "no space left on device" in message.lower(), message
        assert "cannot rollback" not in message, message
        assert "warm tier" in message and str(home / "warm.duckdb") in message, message
        after = Lake(LakeSettings(home=home))
        assert after.read_partition(TICKS, PART).equals(frame)
        assert after.find(TICKS, other) is None
        (home / "ballast").unlink()
        after.write(TICKS, other, next_day, tier="warm")
        assert after.verify(TICKS, other)[0]
        assert after.read_partition(TICKS, other).equals(next_day)
        assert after.read_partition(TICKS, PART).equals(frame)


def test_s3_down_lake_sql_answers_warm_only_and_storage_names_the_endpoint(tmp_path, own_s3, own_bucket_env):
    """S3 server stopped, lake with a warm-tier dataset (bars_1d): ``lake sql`` over it answers from
    warm with one warning naming the S3 endpoint; ``lake storage`` reports warm and one stderr line
    naming the endpoint, status 1 (a failure, not bad input); no botocore traceback; a query naming
    no dataset still runs without S3."""
    import polars as pl

    from lake_tests.reliability.test_cli_errors import run_lake

    env = {"LAKE_HOME": str(tmp_path / "lake"), **own_bucket_env}
    lake = Lake(LakeSettings.from_env(env))
    lake.ensure_bucket()
    bars = dataset_spec("bars_1d")
    from datetime import datetime, timezone

    frame = pl.DataFrame({"symbol": ["EURUSD"], "ts": [datetime(2019, 2, 4, tzinfo=timezone.utc)], "close": [1.14]})
    lake.write(bars, bars.partition(symbol="EURUSD", date="2019-02-04"), frame, tier="warm")
    up = run_lake(["sql", "select count(*) as n from bars_1d", "--format", "csv"], env, tmp_path)
    assert up.returncode == 0 and up.stdout.split() == ["n", "1"], up.stderr
    own_s3.stop()
    try:
        down = run_lake(["sql", "select count(*) as n from bars_1d", "--format", "csv"], env, tmp_path)
        assert down.returncode == 0 and down.stdout.split() == ["n", "1"], down.stderr
        assert [line for line in down.stderr.splitlines() if own_s3.endpoint in line and "unreachable" in line] \
            == down.stderr.strip().splitlines(), down.stderr
        storage = run_lake(["storage"], env, tmp_path)
        assert storage.returncode == 1 and "Traceback" not in storage.stdout + storage.stderr, storage.stderr
        assert len(storage.stderr.strip().splitlines()) == 1 and own_s3.endpoint in storage.stderr, storage.stderr
        assert "unreachable" in storage.stderr and "bars_1d" in storage.stdout, storage.stdout
        plain = run_lake(["sql", "select 41 + 1 as answer", "--format", "csv"], env, tmp_path)
        assert plain.returncode == 0 and plain.stdout.split() == ["answer", "42"], plain.stderr
    finally:
        own_s3.start()

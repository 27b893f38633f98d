"""SIGKILL while writing each tier: afterwards the partition is its previous version or its new one,
never partial, and a re-run converges to exactly the content of a clean run.

A real child process writes the real fixture day (the "new" version) over a stored "old" version (its
first hours) and SIGKILLs itself at a precise step, through a hook patched into the child only
(``lake_tests/reliability/child.py``). The parent then inspects the lake as any later run would.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.client import LakeClient
from lake_resources.settings import LakeSettings
from lake_resources.storage import DATA_FILE, MANIFEST_FILE, Lake, encode_parquet, sha256
from lake_tests.reliability.conftest import run_child

TICKS = dataset_spec("ticks")
PART = TICKS.partition(symbol="EURUSD", date="2019-02-04")

# (id, tier, kill point, what the kill interrupts). Steps are named by the file they publish, so each
# point means the same whatever order the storage code writes the data file and its manifest in.
KILL_POINTS = [
    ("hot-before-first-manifest-write", "hot", "replace:_manifest.json:1:before", "killed just before the first manifest rename"),
    ("hot-after-first-manifest-write", "hot", "replace:_manifest.json:1:after", "killed just after the first manifest rename"),
    ("hot-data-temp-file-complete", "hot", "replace:part-0.parquet:1:before", "new data complete in its temp file, not renamed"),
    ("hot-data-file-swapped", "hot", "replace:part-0.parquet:1:after", "new data file renamed into place"),
    ("warm-before-insert", "warm", "insert:1:before", "the old rows are deleted inside the open transaction"),
    ("warm-before-commit", "warm", "commit:1:before", "new rows and manifest row inserted; COMMIT not yet run"),
    ("warm-after-commit", "warm", "commit:1:after", "COMMIT returned (in the WAL); the file is not checkpointed"),
    ("warm-mid-checkpoint", "warm", "checkpoint:2:during", "the WAL is being checkpointed into the database file"),
    ("cold-before-first-manifest-put", "cold", "pipe:_manifest.json:1:before", "killed just before the first manifest PUT"),
    ("cold-after-first-manifest-put", "cold", "pipe:_manifest.json:1:after", "killed just after the first manifest PUT"),
    ("cold-mid-data-upload", "cold", "sent:200000:mid", "the data object's PUT cut off after ~200 kB of its body"),
    ("cold-data-object-put", "cold", "pipe:part-0.parquet:1:after", "the new data object PUT completed"),
]


@dataclass
class AfterKill:
    tier: str
    returncode: int
    stderr: str
    readable_sha: str | None  # SHA-256 of the canonical encoding of what a read returns
    readable_rows: int | None
    client_rows: int  # rows LakeClient.read returns for the partition
    verify_ok: bool
    verify_detail: str
    stray_files: list[str]  # files in the partition's place other than the data file and manifest
    rerun_sha: str
    rerun_verify_ok: bool
    rerun_client_sha: str
    rerun_stray_files: list[str]


def _settings(tmp_path, tier: str, bucket_env: dict[str, str]) -> tuple[LakeSettings, dict[str, str]]:
    env = {"LAKE_HOME": str(tmp_path / "lake")}
    if tier == "cold":
        env |= bucket_env
    return LakeSettings.from_env(env), env


def _partition_files(lake: Lake, tier: str) -> list[str]:
    """Every file or object where the partition lives (hidden temp files included)."""
    if tier == "warm":
        return []
    store = lake.tier(tier)
    directory = store.dir_of(TICKS, PART)
    if store.is_local:
        import os

        return sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    return sorted(p.rsplit("/", 1)[-1] for p in store.fs.find(directory))


def _stray(files: list[str]) -> list[str]:
    return [f for f in files if f not in (DATA_FILE, MANIFEST_FILE)]


def _readable(lake: Lake) -> tuple[str | None, int | None]:
    try:
        df = lake.read_partition(TICKS, PART)
    except Exception:  # noqa: BLE001 - not readable at all: recorded as None
        return None, None
    return sha256(encode_parquet(df)), df.height


@pytest.fixture(scope="module", params=KILL_POINTS, ids=[k[0] for k in KILL_POINTS])
def after_kill(request, tmp_path_factory, fixture_versions, own_s3) -> AfterKill:
    """Old version stored; a child writing the new version is SIGKILLed at the kill point; the parent
    records what is readable and verifiable, then re-runs the write (as a retried run would)."""
    _id, tier, kill, _what = request.param
    tmp_path = tmp_path_factory.mktemp(_id)
    bucket_env = own_s3.env(f"kill-{_id}") if tier == "cold" else {}
    if tier == "cold" and (own_s3.proc is None or own_s3.proc.poll() is not None):
        own_s3.start()
    settings, env = _settings(tmp_path, tier, bucket_env)
    lake = Lake(settings)
    lake.ensure_bucket()
    lake.write(TICKS, PART, fixture_versions["old"]["frame"], tier=tier)

    child = run_child(["write", "--tier", tier, "--version", "new", "--kill", kill], env)

    after = Lake(settings)  # a fresh process's view: new objects, no caches
    readable_sha, readable_rows = _readable(after)
    client_rows = LakeClient(lake=after).read("ticks", symbols="EURUSD").height
    ok, detail = after.verify(TICKS, PART, tier)
    stray = _stray(_partition_files(after, tier))

    rerun = after.write(TICKS, PART, fixture_versions["new"]["frame"], tier=tier)
    again = Lake(settings)
    rerun_ok, _ = again.verify(TICKS, PART, tier)
    rerun_client = LakeClient(lake=again).read("ticks", symbols="EURUSD")
    return AfterKill(
        tier=tier, returncode=child.returncode, stderr=child.stderr[-2000:],
        readable_sha=readable_sha, readable_rows=readable_rows, client_rows=client_rows,
        verify_ok=ok, verify_detail=detail, stray_files=stray,
        rerun_sha=rerun.sha256, rerun_verify_ok=rerun_ok,
        rerun_client_sha=sha256(encode_parquet(rerun_client)),
        rerun_stray_files=_stray(_partition_files(again, tier)),
    )


def test_child_was_killed_at_the_kill_point(after_kill):
    """The child writing the new version died by SIGKILL at the injected step (not by an error)."""
    assert after_kill.returncode == -signal.SIGKILL, after_kill.stderr


@pytest.mark.data_loss
def test_sigkill_leaves_the_previous_or_the_new_version_readable(after_kill, fixture_versions):
    """After a SIGKILL mid-write, reads return exactly the previous version or the new one: never a
    torn file, a mix of both, or nothing."""
    versions = {fixture_versions[v]["sha256"]: v for v in ("old", "new")}
    assert after_kill.readable_sha in versions, f"read returned neither version ({after_kill.readable_rows} rows)"
    assert after_kill.client_rows == after_kill.readable_rows  # LakeClient sees the same single version


def test_sigkill_leaves_the_partition_consistent_with_its_manifest(after_kill):
    """After a SIGKILL mid-write, ``Lake.verify`` passes: the stored data matches its manifest (row
    count and SHA-256), so a migration or audit sees one whole version, not half an update."""
    assert after_kill.verify_ok, after_kill.verify_detail


def test_sigkill_leaves_no_partial_object_where_readers_look(after_kill):
    """After a SIGKILL mid-write, no partial file or object sits under a name readers use; on S3
    nothing but the partition's data object and manifest exist (an interrupted PUT leaves nothing)."""
    if after_kill.tier == "cold":
        assert after_kill.stray_files == []
    else:  # hidden temp files (".part-0.parquet.tmp-…") are never read; anything else would be
        assert [f for f in after_kill.stray_files if not f.startswith(".")] == []


@pytest.mark.data_loss
def test_rerun_after_sigkill_converges_to_a_clean_run(after_kill, fixture_versions):
    """Re-running the killed write gives exactly a clean run's content: same SHA-256 as a write into a
    fresh lake, verified, and read back identically."""
    clean = fixture_versions["new"]["sha256"]
    assert after_kill.rerun_sha == clean
    assert after_kill.rerun_verify_ok
    assert after_kill.rerun_client_sha == clean
    assert [f for f in after_kill.rerun_stray_files if not f.startswith(".")] == []

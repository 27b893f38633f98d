"""Fixtures of the reliability suite, and the tally it leaves behind.

Every test here is one scenario: its name and docstring say what was done to the lake and what must
hold afterwards. At the end of a session that ran any of them, ``lake_tests/_artifacts/
reliability_tally.json`` records the scenarios tried, survived and failed, and ``data_lost``: how
many failed tests were ones marked ``@pytest.mark.data_loss`` (their failure means rows the lake had,
or was given, are gone or wrong), so the README tally can be refreshed from it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lake_tests import s3server
from lake_tests.reliability import tally
from lake_tests.s3server import S3Server

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
FIXTURE_KEY = "2019-02-04|EURUSD"
#: A three-day range: the real fixture day filed under three consecutive dates.
DAYS = ["2019-02-04", "2019-02-05", "2019-02-06"]

GROUPS = {
    "test_kill": "faults",
    "test_outage": "faults",
    "test_s3_outage_reads": "faults",
    "test_concurrency": "faults",
    "test_backfill_restart": "faults",
    "test_backfill_stuck": "faults",
    "test_lake_settings": "bad input",
    "test_bad_input": "bad input",
    "test_bad_input_ingest": "bad input",
    "test_bad_input_symbols": "bad input",
    "test_cli_errors": "bad input",
    "test_security": "security",
    "test_sql_readonly": "security",
    "test_glob_home": "bad input",
    "test_damage": "faults",
}


# ---------------------------------------------------------------------------------------------
# The tally
# ---------------------------------------------------------------------------------------------
def pytest_configure(config):
    config.addinivalue_line(
        "markers", "data_loss: the scenario asserts that no data is lost; its failure counts as data lost in the tally"
    )


#: nodeid -> scenario entry, for the tests of this directory collected in this session.
_TALLY: dict[str, dict] = {}


def _ours(nodeid: str) -> bool:
    return nodeid.replace("\\", "/").startswith("lake_tests/reliability/")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _ours(item.nodeid):
            doc = (getattr(item.function, "__doc__", None) or "").strip()
            _TALLY[item.nodeid] = {
                "id": item.nodeid,
                "group": GROUPS.get(item.module.__name__.rsplit(".", 1)[-1], "other"),
                "scenario": " ".join(doc.split("\n\n")[0].split()) or item.name,
                "asserts_no_data_loss": item.get_closest_marker("data_loss") is not None,
                "outcome": "not run",
            }


def pytest_runtest_logreport(report):
    entry = _TALLY.get(report.nodeid)
    if entry is None:
        return
    if report.failed:
        entry["outcome"] = "failed"
        if report.when != "call":
            entry["failed_in"] = report.when
    elif report.skipped and entry["outcome"] != "failed":
        entry["outcome"] = "skipped"
    elif report.when == "call" and report.passed and entry["outcome"] == "not run":
        entry["outcome"] = "survived"


def pytest_sessionfinish(session, exitstatus):
    ran = [e for e in _TALLY.values() if e["outcome"] != "not run"]
    worker = getattr(session.config, "workerinput", {}).get("workerid")
    if worker is not None:  # a pytest-xdist worker: the controller merges the parts (lake_tests/conftest.py)
        tally.write_part(worker, ran)
    elif ran:
        tally.write_tally(ran)


# ---------------------------------------------------------------------------------------------
# An S3 server of the suite's own, with distinctive credentials
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _server_credentials(access_key: str, secret_key: str):
    # S3Server writes its identity file from these module constants.
    saved = s3server.ACCESS_KEY, s3server.SECRET_KEY
    s3server.ACCESS_KEY, s3server.SECRET_KEY = access_key, secret_key
    try:
        yield
    finally:
        s3server.ACCESS_KEY, s3server.SECRET_KEY = saved


@dataclass
class SecretS3Server(S3Server):
    """An ``S3Server`` whose keys are unique to this session, so a grep for them finds only leaks."""

    access_key: str = field(default_factory=lambda: f"RELIABILITYKEY{secrets.token_hex(6).upper()}")
    secret_key: str = field(default_factory=lambda: f"reliability-secret-{secrets.token_hex(12)}")

    def start(self, timeout: float = 60) -> SecretS3Server:
        with _server_credentials(self.access_key, self.secret_key):
            super().start(timeout)
        return self

    def env(self, bucket: str) -> dict[str, str]:
        return super().env(bucket) | {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    @property
    def secrets(self) -> list[str]:
        return [self.access_key, self.secret_key]


@pytest.fixture(scope="session")
def own_s3(tmp_path_factory) -> SecretS3Server:
    """The reliability suite's own S3 server: outage tests stop and restart it (never the shared one)."""
    server = SecretS3Server(tmp_path_factory.mktemp("own-s3")).start()
    yield server
    server.stop()


_buckets = iter(range(10**6))


@pytest.fixture
def own_bucket_env(own_s3) -> dict[str, str]:
    """S3 environment of a fresh bucket on the suite's own server (started if a test left it down)."""
    if own_s3.proc is None or own_s3.proc.poll() is not None:
        own_s3.start()
    return own_s3.env(f"rel-{next(_buckets)}-{os.getpid()}")


# ---------------------------------------------------------------------------------------------
# Lakes, frames, children, Dagster
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def fixture_versions(tmp_path_factory):
    """The fixture partition's two versions ("old": its first hours, "new": the whole real day) and
    the SHA-256 each gets from a clean write into a fresh lake."""
    from lake_resources.settings import LakeSettings
    from lake_resources.storage import Lake
    from lake_tests.reliability.child import fixture_ticks

    lake = Lake(LakeSettings(home=tmp_path_factory.mktemp("clean-write")))
    out = {}
    for version in ("old", "new"):
        df = fixture_ticks(version)
        info = lake.write("ticks", (("symbol", "EURUSD"), ("date", "2019-02-04")), df)
        out[version] = {"frame": df, "rows": info.rows, "sha256": info.sha256}
    assert out["old"]["sha256"] != out["new"]["sha256"] and 0 < out["old"]["rows"] < out["new"]["rows"]
    return out


CHILD = [sys.executable, "-m", "lake_tests.reliability.child"]


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This environment without the lake's own settings, plus ``env`` (the child's lake)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "AWS_", "DAGSTER_"))} | env
    full["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + full.get("PYTHONPATH", "")
    return full


def run_child(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m lake_tests.reliability.child ...`` with the lake given by ``env``."""
    return subprocess.run(CHILD + args, env=child_env(env), cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def dagster_defs():
    from lake_assets.definitions import defs

    return defs


def lake_resources_for(home: Path | str, datafeed: Path | str | None = None, s3_env: dict[str, str] | None = None,
                       landing: Path | str | None = None, use_env_vars: bool = False) -> dict:
    """Dagster resources on a lake at ``home`` (cold tier on S3 when ``s3_env`` is given).

    ``use_env_vars``: credentials as ``dg.EnvVar`` (as ``lake_assets/resources.py`` configures them in
    production); the caller must have put them into the environment."""
    import dagster as dg

    from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource

    s3_env = s3_env or {}
    creds = {}
    if s3_env:
        creds = ({"aws_access_key_id": dg.EnvVar("AWS_ACCESS_KEY_ID"), "aws_secret_access_key": dg.EnvVar("AWS_SECRET_ACCESS_KEY")}
                 if use_env_vars else
                 {"aws_access_key_id": s3_env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": s3_env["AWS_SECRET_ACCESS_KEY"]})
    lake = LakeResource(home=str(home), s3_endpoint=s3_env.get("LAKE_S3_ENDPOINT"),
                        s3_bucket=s3_env.get("LAKE_S3_BUCKET", "quant-lake"),
                        landing=str(landing) if landing else None, **creds)
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake)}
    resources["dukascopy"] = DukascopyResource(feed="datafeed", url=str(datafeed or "/nonexistent"), lake=lake)
    return resources


def materialize(defs, selection: list[str], resources: dict, *, key: str | None = FIXTURE_KEY,
                start: str | None = None, end: str | None = None, instance=None):
    """``dg.materialize`` of ``selection`` for one partition key, or a range (single run)."""
    import dagster as dg

    tags = {}
    if start is not None:
        tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
        key = None
    return dg.materialize(list(defs.assets), selection=selection, partition_key=key, tags=tags, resources=resources,
                          instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False)


def failure_messages(result) -> list[str]:
    """The messages (with causes) of a run's step and run failures."""
    out = []
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE"):
            text = event.message or ""
            data = event.event_specific_data
            error = getattr(data, "error", None)
            while error is not None:
                text += "\n" + (error.message or "")
                error = error.cause
            out.append(text)
    return out


def copy_datafeed_day(src_day_dir: Path, dst_root: Path, symbol: str, day: str) -> Path:
    """Copy the fixture's 24 hourly files to ``{dst_root}/{symbol}/{Y}/{M-1:02}/{D}`` for ``day``."""
    y, m, d = (int(x) for x in day.split("-"))
    dst = dst_root / symbol / f"{y:04d}" / f"{m - 1:02d}" / f"{d:02d}"
    dst.mkdir(parents=True, exist_ok=True)
    for h in range(24):
        name = f"{h:02d}h_ticks.bi5"
        (dst / name).write_bytes((src_day_dir / name).read_bytes())
    return dst


@pytest.fixture(scope="session")
def three_day_datafeed(tmp_path_factory, datafeed_dir) -> Path:
    """The real fixture day filed under three consecutive dates (a range to backfill)."""
    root = tmp_path_factory.mktemp("datafeed3")
    for day in DAYS:
        copy_datafeed_day(datafeed_dir / "EURUSD/2019/01/04", root, "EURUSD", day)
    return root


@pytest.fixture(scope="session")
def clean_range_shas(tmp_path_factory, dagster_defs, three_day_datafeed) -> dict[str, str]:
    """SHA-256 of each day's ticks after a clean single-run backfill of the range into a fresh lake."""
    from lake_resources.catalog.datasets import dataset_spec
    from lake_resources.settings import LakeSettings
    from lake_resources.storage import Lake

    ticks = dataset_spec("ticks")
    home = tmp_path_factory.mktemp("clean-range") / "lake"
    result = materialize(dagster_defs, ["raw_dukascopy", "ticks"], lake_resources_for(home, three_day_datafeed),
                         start=f"{DAYS[0]}|EURUSD", end=f"{DAYS[-1]}|EURUSD")
    assert result.success, failure_messages(result)
    lake = Lake(LakeSettings(home=home))
    return {d: lake.manifest(ticks, ticks.partition(symbol="EURUSD", date=d), "hot")["sha256"] for d in DAYS}

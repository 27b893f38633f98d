"""Bad input at the ``lake`` command: each case gives one line on stderr naming what is wrong and
where, exit status 2 (bad input), and no traceback.

Every test runs the real ``lake`` executable of this environment in a subprocess; the S3 cases talk to
the suite's own real S3 server with wrong credentials or a bad bucket name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lake_tests.reliability.conftest import child_env

LAKE = Path(sys.executable).parent / "lake"


def run_lake(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(LAKE), *args], env=child_env(env), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line(result: subprocess.CompletedProcess, status: int, *names: str) -> str:
    """Exit ``status``, exactly one line on stderr that contains every one of ``names``, no traceback."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == status, (result.returncode, result.stderr)
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "lake"


def test_wrong_s3_credentials_give_one_line_naming_the_endpoint(tmp_path, home, own_bucket_env, own_s3):
    """``lake migrate`` (which makes sure the bucket exists) and ``lake storage`` with a secret key the
    S3 server does not accept: one line naming the endpoint and the variables to check, status 2,
    and the wrong secret is not printed."""
    env = {"LAKE_HOME": str(home), **own_bucket_env, "AWS_SECRET_ACCESS_KEY": "not-the-secret-Kx81"}
    for args in (["migrate", "--dry-run"], ["storage"]):
        line = assert_one_line(run_lake(args, env, tmp_path), 2, own_s3.endpoint, "AWS_SECRET_ACCESS_KEY")
        assert "not-the-secret-Kx81" not in line


def test_invalid_bucket_name_is_refused_by_the_settings(tmp_path, home, own_bucket_env):
    """``LAKE_S3_BUCKET=Bad_Bucket`` (upper case and '_' are not allowed in S3 bucket names): every
    command refuses it in one line naming the variable, before any request is made."""
    env = {"LAKE_HOME": str(home), **own_bucket_env, "LAKE_S3_BUCKET": "Bad_Bucket"}
    for args in (["config"], ["storage"]):
        assert_one_line(run_lake(args, env, tmp_path), 2, "LAKE_S3_BUCKET", "Bad_Bucket")


def test_s3_prefix_with_dotdot_is_refused(tmp_path, home, own_bucket_env):
    """``LAKE_S3_PREFIX=lake/../other`` would put the lake's keys outside its prefix: refused in one
    line naming the variable."""
    env = {"LAKE_HOME": str(home), **own_bucket_env, "LAKE_S3_PREFIX": "lake/../other"}
    assert_one_line(run_lake(["config"], env, tmp_path), 2, "LAKE_S3_PREFIX", "'..'")


def test_bad_symbol_in_lake_symbols_gives_one_line(tmp_path, home):
    """``LAKE_SYMBOLS='EURUSD,../x'``: one line naming the variable and the bad symbol (it used to be
    a double traceback: the error handler read the settings again)."""
    env = {"LAKE_HOME": str(home), "LAKE_SYMBOLS": "EURUSD,../x"}
    assert_one_line(run_lake(["config"], env, tmp_path), 2, "LAKE_SYMBOLS", "../x")


def test_impossible_start_date_is_refused_by_lake_config(tmp_path, home):
    """``LAKE_START_DATE=2018-13-01`` (month 13): ``lake config`` refuses it in one line instead of
    showing it as in force (the Dagster definitions then crashed on it)."""
    env = {"LAKE_HOME": str(home), "LAKE_START_DATE": "2018-13-01"}
    assert_one_line(run_lake(["config"], env, tmp_path), 2, "LAKE_START_DATE", "2018-13-01")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--symbols", "EURUSD,FOOBAR", "--start", "2019-02-04", "--end", "2019-02-04"], ["--symbols", "FOOBAR"]),
        (["--symbols", "EURUSD", "--start", "2019-02-05", "--end", "2019-02-04"], ["--end", "--start", "2019-02-04"]),
        (["--symbols", "EURUSD", "--start", "2019-02-04", "--end", "2019-02-04", "--ticks-per-day", "-1"],
         ["--ticks-per-day", "-1"]),
    ],
    ids=["unknown-symbol", "end-before-start", "negative-ticks"],
)
def test_lake_generate_bad_arguments_give_one_line_and_write_nothing(tmp_path, home, args, names):
    """``lake generate`` with an unknown symbol, an end before the start, or ``--ticks-per-day -1``:
    one line naming the option, status 2, and not one file written."""
    out = tmp_path / "out"
    assert_one_line(run_lake(["generate", *args, "--out", str(out)], {"LAKE_HOME": str(home)}, tmp_path), 2, *names)
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))

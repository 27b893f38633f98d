"""Settings a new user gets wrong, said where they fail: a symbol the lake does not ingest versus an
unknown one, a day before the lake's first day, a feed that cannot be reached; and a lake made by
``lake demo`` remembers its feed, so the next ``lake backfill`` does not go to the vendor's host."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from lake_assets.cli.demo import record_demo_config
from lake_resources.settings import LakeSettings
from lake_resources.sources.dukascopy.api_layout import mirror_bi5_day
from lake_tests.reliability.conftest import REPO_ROOT, child_env, copy_datafeed_day

LAKE = str(Path(sys.executable).parent / "lake")
TIMEOUT_S = 240  # a bound on a hung command, not a performance assertion


def _lake(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([LAKE, *args], env=child_env(env), cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def _demo_lake(tmp_path: Path) -> Path:
    """A lake whose config ``lake demo`` recorded (EURUSD, XAUUSD from 2019-02-04, sample feed in landing)."""
    home = tmp_path / "lake"
    record_demo_config(LakeSettings.from_env({"LAKE_HOME": str(home)}), "EURUSD,XAUUSD", date(2019, 2, 4),
                       lambda _: None)
    return home


def _suggested_command(stderr: str) -> list[str]:
    line = stderr.strip().splitlines()[-1]
    return shlex.split(line.rsplit(": ", 1)[1])


def test_a_known_symbol_the_lake_does_not_ingest_and_an_unknown_one_get_different_errors(tmp_path):
    """``lake backfill --symbols GBPJPY`` (a real instrument, not in this lake's symbols) says how to
    add it, with the exact command, which then works; ``FOOBAR`` is called unknown. Both exit 2."""
    home = _demo_lake(tmp_path)
    env = {"LAKE_HOME": str(home)}
    args = ["backfill", "--start", "2019-02-04", "--end", "2019-02-04", "--no-wait", "--select", "raw_dukascopy"]
    known = _lake([*args, "--symbols", "GBPJPY"], env)
    unknown = _lake([*args, "--symbols", "FOOBAR"], env)
    for done in (known, unknown):
        assert done.returncode == 2, done.stdout + done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "unknown instrument(s) FOOBAR" in unknown.stderr and "instruments.json" in unknown.stderr
    assert "GBPJPY is not ingested by this lake" in known.stderr and "lake.toml" in known.stderr
    command = _suggested_command(known.stderr)
    assert command == ["lake", "config", "--set", "LAKE_SYMBOLS=EURUSD,XAUUSD,GBPJPY"], known.stderr
    assert _lake(command[1:], env).returncode == 0
    retried = _lake([*args, "--symbols", "GBPJPY"], env)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    # set in the environment, the hint is an export of the variable instead
    exported = _lake([*args, "--symbols", "USDJPY"], {**env, "LAKE_SYMBOLS": "EURUSD"})
    assert exported.returncode == 2 and exported.stderr.strip().endswith("export LAKE_SYMBOLS=EURUSD,USDJPY"), exported.stderr


def test_a_day_before_the_lakes_first_day_says_how_to_add_it(tmp_path):
    """A backfill from before the lake's recorded first day exits 2 with the command that moves it."""
    home = _demo_lake(tmp_path)
    env = {"LAKE_HOME": str(home)}
    args = ["backfill", "--start", "2019-01-28", "--end", "2019-02-04", "--symbols", "EURUSD", "--no-wait",
            "--select", "raw_dukascopy"]
    done = _lake(args, env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "before this lake's first day LAKE_START_DATE=2019-02-04" in done.stderr, done.stderr
    command = _suggested_command(done.stderr)
    assert command == ["lake", "config", "--set", "LAKE_START_DATE=2019-01-28"], done.stderr
    assert _lake(command[1:], env).returncode == 0
    assert _lake(args, env).returncode == 0


def test_backfill_after_demo_reads_the_demos_feed_not_the_vendors_host(tmp_path, datafeed_dir):
    """On a lake made by ``lake demo`` (its sample BI5 files in the landing area) ``lake backfill`` with
    no ``LAKE_DUKASCOPY_URL`` reads the feed the lake remembers and completes."""
    home = _demo_lake(tmp_path)
    copy_datafeed_day(datafeed_dir / "EURUSD/2019/01/04", home / "landing" / "dukascopy", "EURUSD", "2019-02-04")
    # the demo's sample feed in the default feed's layout (the JSON data API), as `lake generate` writes it
    mirror_bi5_day(home / "landing" / "dukascopy", home / "landing" / "dukascopy-api", "EURUSD", "EUR-USD",
                   date(2019, 2, 4), 100000)
    done = _lake(["backfill", "--start", "2019-02-04", "--end", "2019-02-04", "--symbols", "EURUSD",
                  "--select", "raw_dukascopy,ticks"], {"LAKE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "COMPLETED_SUCCESS" in done.stdout


@pytest.mark.parametrize("feed_kind,variable", [("datafeed", "LAKE_DUKASCOPY_URL"), ("api", "LAKE_DUKASCOPY_API")])
def test_an_unreachable_feed_is_one_line_naming_the_feed_and_the_variable(tmp_path, feed_kind, variable):
    """``lake backfill`` against a feed nobody answers: exit 1, no traceback, one line naming the feed,
    where its value came from and the command that sets it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    feed = f"http://127.0.0.1:{port}"
    home = tmp_path / "lake"
    done = _lake(["backfill", "--start", "2019-02-04", "--end", "2019-02-04", "--symbols", "EURUSD",
                  "--select", "raw_dukascopy,ticks"],
                 {"LAKE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "LAKE_DUKASCOPY_FEED": feed_kind,
                  variable: feed})
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out, out
    [line] = [ln for ln in out.splitlines() if "cannot read the Dukascopy feed" in ln]
    assert f"feed {feed} ({variable}, environment)" in line and f"export {variable}=" in line, line

"""The lake's own config file (``LAKE_HOME/lake.toml``): read under the environment, shown with where
each value came from, written by ``lake config --set`` and by ``lake demo``, and shaping the
partitions that every process loading the definitions (``lake ui``, ``dagster``) sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from lake_assets.cli.demo import record_demo_config
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.lakeconfig import config_path
from lake_resources.settings import DEFAULT_START_DATE, DEFAULT_SYMBOLS, LakeSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
LAKE = str(Path(sys.executable).parent / "lake")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "DAGSTER_"))}
    return {**env, "LAKE_HOME": str(home), **extra}


def _lake(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([LAKE, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_lake_config_is_read_under_the_environment_and_shown_with_its_source(tmp_path):
    home = tmp_path / "lake"
    done = _lake(["config", "--set", "LAKE_SYMBOLS=EURUSD,XAUUSD", "--set", "LAKE_START_DATE=2019-02-04",
                  "--set", f"LAKE_DUKASCOPY_URL={tmp_path / 'feed'}"], _env(home))
    assert done.returncode == 0, done.stderr
    assert config_path(home).is_file()

    settings = LakeSettings.from_env({"LAKE_HOME": str(home)})
    assert settings.symbols == ("EURUSD", "XAUUSD") and settings.start_date == "2019-02-04"
    assert settings.dukascopy_url == str(tmp_path / "feed")
    assert settings.source("LAKE_SYMBOLS") == str(config_path(home))
    # the environment overrides the file
    over = LakeSettings.from_env({"LAKE_HOME": str(home), "LAKE_SYMBOLS": "EURUSD"})
    assert over.symbols == ("EURUSD",) and over.source("LAKE_SYMBOLS") == "environment"
    assert over.start_date == "2019-02-04"
    # without a file: the built-in defaults
    bare = LakeSettings.from_env({"LAKE_HOME": str(tmp_path / "other")})
    assert bare.symbols == DEFAULT_SYMBOLS and bare.start_date == DEFAULT_START_DATE and bare.source("LAKE_SYMBOLS") == "default"

    shown = _lake(["config"], _env(home, LAKE_START_DATE="2019-02-05"))
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines() if line.strip()}
    assert "EURUSD,XAUUSD" in lines["LAKE_SYMBOLS"] and f"({config_path(home)})" in lines["LAKE_SYMBOLS"]
    assert "2019-02-05" in lines["LAKE_START_DATE"] and "(environment)" in lines["LAKE_START_DATE"]
    assert "(default)" in lines["AWS_ACCESS_KEY_ID"]

    # --unset drops a value back to its default
    assert _lake(["config", "--unset", "LAKE_DUKASCOPY_URL"], _env(home)).returncode == 0
    assert LakeSettings.from_env({"LAKE_HOME": str(home)}).source("LAKE_DUKASCOPY_URL") == "default"


def test_lake_config_refuses_what_cannot_live_in_it(tmp_path):
    home = tmp_path / "lake"
    assert _lake(["config", "--set", "LAKE_SYMBOLS=EURUSD"], _env(home)).returncode == 0
    before = config_path(home).read_text()
    for assignment, what in (("LAKE_HOME=/elsewhere", "LAKE_HOME"), ("AWS_SECRET_ACCESS_KEY=x", "AWS_SECRET_ACCESS_KEY"),
                             ("LAKE_SYMBOLS=EURUSD,../x", "invalid symbol"), ("NOEQUALS", "NAME=VALUE")):
        done = _lake(["config", "--set", assignment], _env(home))
        assert done.returncode == 2, (assignment, done.stdout, done.stderr)
        assert what in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert config_path(home).read_text() == before  # nothing written
    # a hand-edited file with an unknown key is named in the error
    config_path(home).write_text('symbols = "EURUSD"\nsymbol_list = "XAUUSD"\n')
    with pytest.raises(LakeValidationError, match=r"lake\.toml: unknown key 'symbol_list'"):
        LakeSettings.from_env({"LAKE_HOME": str(home)})


def test_demo_records_its_feed_first_day_and_symbols_and_the_window_grows(tmp_path):
    home = tmp_path / "lake"
    settings = LakeSettings.from_env({"LAKE_HOME": str(home)})
    said: list[str] = []
    recorded = record_demo_config(settings, "EURUSD,XAUUSD", date(2019, 2, 4), said.append)
    assert recorded.symbols == ("EURUSD", "XAUUSD") and recorded.start_date == "2019-02-04"
    assert recorded.dukascopy_url == str(settings.landing_root / "dukascopy")
    assert any("lake.toml" in line for line in said)
    # a longer demo with one more symbol: the window and the universe grow, nothing is dropped
    again = record_demo_config(recorded, "AAPL", date(2019, 1, 28), said.append)
    assert again.symbols == ("EURUSD", "XAUUSD", "AAPL") and again.start_date == "2019-01-28"
    # what the environment sets is not written (it wins anyway)
    os.environ["LAKE_SYMBOLS"] = "EURUSD,XAUUSD,AAPL,GBPUSD"
    try:
        env_set = LakeSettings.from_env({**os.environ, "LAKE_HOME": str(home)})
        record_demo_config(env_set, "GBPUSD", date(2019, 1, 28), said.append)
    finally:
        del os.environ["LAKE_SYMBOLS"]
    assert LakeSettings.from_env({"LAKE_HOME": str(home)}).symbols == ("EURUSD", "XAUUSD", "AAPL")


def test_partitions_fit_the_lake_in_every_process_that_loads_the_definitions(tmp_path):
    """``lake ui``'s code server and plain ``dagster`` import the definitions with only ``LAKE_HOME``
    set: the partitions they get start at the lake's first day and cover its symbols only."""
    home = tmp_path / "lake"
    record_demo_config(LakeSettings.from_env({"LAKE_HOME": str(home)}), "EURUSD,XAUUSD", date(2019, 2, 4), lambda _: None)
    probe = ("import json; from lake_assets.definitions import defs; import dagster as dg; "
             "p = defs.resolve_asset_graph().get(dg.AssetKey('bars_1m')).partitions_def; "
             "d = {x.name: x.partitions_def.get_partition_keys() for x in p.partitions_defs}; "
             "print(json.dumps({'first': d['date'][0], 'days': len(d['date']), 'symbols': d['symbol']}))")
    done = subprocess.run([sys.executable, "-c", probe], env=_env(home), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    assert got["first"] == "2019-02-04" and got["symbols"] == ["EURUSD", "XAUUSD"]
    assert got["days"] == (yesterday - date(2019, 2, 4)).days + 1


def test_lake_config_round_trips_any_text(tmp_path):
    from lake_resources.lakeconfig import read_lake_config, write_lake_config
    from lake_resources.settings import ENV_VARS

    odd = 'file:///data/"quoted" \\ back\\slash/ünïcode\tTab'
    write_lake_config(tmp_path, ENV_VARS, {"LAKE_DUKASCOPY_URL": odd})
    assert read_lake_config(tmp_path, ENV_VARS) == {"LAKE_DUKASCOPY_URL": odd}
    assert not list(tmp_path.glob(".lake.toml.*"))  # no temp file left behind

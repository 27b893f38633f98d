"""Shared pytest fixtures: paths to the real Dukascopy fixtures, a fresh lake home per test."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Settings (and the partitions made from them at import) read LAKE_HOME/lake.toml: without a LAKE_HOME
# that would be the developer's ./.lake, whose demo config must not shape the tests' partitions.
if not os.environ.get("LAKE_HOME"):
    _UNUSED_HOME = tempfile.mkdtemp(prefix="lake-tests-home-")
    os.environ["LAKE_HOME"] = str(Path(_UNUSED_HOME) / "lake")
    atexit.register(shutil.rmtree, _UNUSED_HOME, True)
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "dukascopy"
DATAFEED = SHARED_FIXTURES / "datafeed"


@pytest.fixture(scope="session")
def dukascopy_fixtures() -> Path:
    """``../shared/fixtures/dukascopy`` (real files: EURUSD 2019-02-04 ticks and candles)."""
    if not DATAFEED.is_dir():
        pytest.fail(f"real Dukascopy fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def datafeed_dir(dukascopy_fixtures: Path) -> Path:
    return dukascopy_fixtures / "datafeed"


@pytest.fixture(scope="session")
def day_ticks(datafeed_dir: Path):
    """The real EURUSD day 2019-02-04 (24 hourly files, 136,741 ticks), decoded and normalized."""
    from datetime import date

    from lake_resources.catalog.instruments import decimal_factor
    from lake_resources.sources.dukascopy import bi5
    from lake_resources.transforms.ticks import normalize_ticks

    day = date(2019, 2, 4)
    hours = [(datafeed_dir / bi5.hour_path("EURUSD", h)).read_bytes() for h in bi5.day_hours(day)]
    return normalize_ticks(bi5.decode_day_ticks(hours, day, decimal_factor("EURUSD")), "EURUSD")


@pytest.fixture(scope="session")
def bars_1m(day_ticks):
    """Minute bars of the real EURUSD day 2019-02-04."""
    from lake_resources.transforms.bars import minute_bars

    return minute_bars(day_ticks)


# ---------------------------------------------------------------------------------------------
# Lakes on real parts
# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# The reliability tally under pytest-xdist (scripts/test.sh runs workers): each worker writes its part,
# the controller (no ``workerinput``) merges them once every worker is done.
# ---------------------------------------------------------------------------------------------
def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):
        from lake_tests.reliability import tally

        tally.clear_parts()


def pytest_sessionfinish(session, exitstatus):
    if not hasattr(session.config, "workerinput"):
        from lake_tests.reliability import tally

        tally.merge_parts()


import itertools  # noqa: E402

from lake_tests.s3server import S3Server  # noqa: E402

_bucket_ids = itertools.count()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    """A real S3 server (SeaweedFS ``weed mini``) on loopback, once per test session."""
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def lake_settings(tmp_path):
    """Settings of a fresh embedded lake (cold tier = local directory)."""
    from lake_resources.settings import LakeSettings

    return LakeSettings(home=tmp_path / "lake", symbols=("EURUSD", "XAUUSD", "AAPL"))


@pytest.fixture
def s3_lake_settings(tmp_path, s3_server):
    """Settings of a fresh lake whose cold tier is a new bucket on the real S3 server."""
    from lake_resources.settings import LakeSettings

    env = s3_server.env(f"lake-{next(_bucket_ids)}-{os.getpid()}")
    return LakeSettings.from_env({"LAKE_HOME": str(tmp_path / "lake"), **env})


# ---------------------------------------------------------------------------------------------
# The JSON data API layout (lake_tests/api_server.py)
# ---------------------------------------------------------------------------------------------
API_FIXTURES = SHARED_FIXTURES / "api"


@pytest.fixture(scope="session")
def api_layout_dir(tmp_path_factory, datafeed_dir) -> Path:
    """The API layout of the real fixtures: the API's own responses (EUR-USD ticks of 2026-07-13 12h,
    BID minute candles of 2026-07-10 and the empty 2026-07-11, the EUR-USD detail) plus the BI5 day
    EURUSD 2019-02-04 re-encoded (24 hours; BID/ASK minute, hour and day candles)."""
    from datetime import date

    from lake_resources.sources.dukascopy.api_layout import mirror_bi5_day

    if not API_FIXTURES.is_dir():
        pytest.fail(f"real Dukascopy API fixtures not found at {API_FIXTURES}")
    root = tmp_path_factory.mktemp("api-layout")
    copies = {
        "ticks-EUR-USD-2026-7-13-12.json": "ticks/EUR-USD/2026/7/13/12",
        "candles-minute-EUR-USD-BID-2026-7-10.json": "candles/minute/EUR-USD/BID/2026/7/10",
        "candles-minute-EUR-USD-BID-2026-7-11-empty.json": "candles/minute/EUR-USD/BID/2026/7/11",
        "instrument-EUR-USD.json": "instruments/EUR-USD",
    }
    for name, rel in copies.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((API_FIXTURES / name).read_bytes())
    mirror_bi5_day(datafeed_dir, root, "EURUSD", "EUR-USD", date(2019, 2, 4), 100000)
    return root


@pytest.fixture
def api_server(tmp_path, api_layout_dir):
    """A loopback server of the API layout (a private copy, so tests may add files), with faults."""
    import shutil

    from lake_tests.api_server import ApiServer

    root = tmp_path / "api"
    shutil.copytree(api_layout_dir, root)
    server = ApiServer(root)
    yield server
    server.close()

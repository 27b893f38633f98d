"""Reads and ``lake storage`` while the S3 cold tier is down.

The lake's record of its cold tier (``cold_record.py``) plans a read when S3 cannot be listed: a read
that needs no cold partition answers from hot and warm with a warning naming the endpoint; one that
needs a cold partition fails naming it. These tests stop the reliability suite's own S3 server (never
the session-wide one) and start it again on the same ports with the same data.
"""

from __future__ import annotations

import json
import warnings
from datetime import timedelta

import polars as pl
import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.client import LakeClient
from lake_resources.lifecycle import move_partition
from lake_resources.settings import LakeSettings
from lake_resources.storage import ColdTierUnreachable, ColdTierUnreachableWarning, Lake
from lake_tests.reliability.test_cli_errors import assert_one_line, run_lake

BARS = dataset_spec("bars_1m")
EUR_DAY = BARS.partition(symbol="EURUSD", date="2019-02-04")
XAU_DAY = BARS.partition(symbol="XAUUSD", date="2019-02-01")


def _shifted(frame: pl.DataFrame, symbol: str, days: int) -> pl.DataFrame:
    return frame.with_columns(pl.lit(symbol).alias("symbol"), pl.col("ts") + timedelta(days=days))


@pytest.fixture
def outage_lake(tmp_path, own_s3, own_bucket_env, bars_1m) -> dict:
    """EURUSD 2019-02-04 minute bars in warm; XAUUSD 2019-02-01 moved from warm to cold (what
    ``lake migrate --to cold`` does), all while S3 is up."""
    env = {"LAKE_HOME": str(tmp_path / "lake"), **own_bucket_env}
    settings = LakeSettings.from_env(env)
    lake = Lake(settings)
    lake.ensure_bucket()
    lake.write(BARS, EUR_DAY, bars_1m, tier="warm")
    lake.write(BARS, XAU_DAY, _shifted(bars_1m, "XAUUSD", -3), tier="warm")
    move_partition(lake, BARS, XAU_DAY, "cold")
    assert lake.find(BARS, XAU_DAY).value == "cold"
    assert LakeClient(lake=lake).read("bars_1m").height == 2 * bars_1m.height  # a read lists the cold tier
    return {"env": env, "settings": settings, "bars": bars_1m, "home": tmp_path}


@pytest.fixture
def s3_down(own_s3):
    """Stops the suite's own S3 server for the test; started again whatever the outcome."""
    own_s3.stop()
    try:
        yield own_s3
    finally:
        if own_s3.proc is None or own_s3.proc.poll() is not None:
            own_s3.start()


@pytest.fixture
def s3_down_later(own_s3):
    """A context manager stopping the suite's own S3 server inside a test (started again on exit)."""
    import contextlib

    @contextlib.contextmanager
    def down():
        own_s3.stop()
        try:
            yield own_s3
        finally:
            own_s3.start()

    return down


def test_s3_down_warm_only_read_answers_with_a_warning_and_a_cold_read_fails_naming_it(outage_lake, s3_down):
    """S3 server stopped: ``LakeClient.read`` and ``lake sql`` over warm-only bars_1m answer from warm
    with a warning naming the endpoint and the age of the cold record; a read or query that needs the
    partition moved to cold fails with one line naming the endpoint and that partition."""
    endpoint, env, home = s3_down.endpoint, outage_lake["env"], outage_lake["home"]
    client = LakeClient(lake=Lake(outage_lake["settings"]))  # a fresh process's view: nothing cached
    with pytest.warns(ColdTierUnreachableWarning) as caught:
        df = client.read("bars_1m", symbols="EURUSD", start="2019-02-04", end="2019-02-04")
    assert df.sort("ts").equals(outage_lake["bars"].sort("ts").select(df.columns))
    message = str(caught[0].message)
    assert endpoint in message and "last listed" in message and "another host" in message, message

    with pytest.raises(ColdTierUnreachable) as needed:
        client.read("bars_1m", symbols="XAUUSD", start="2019-02-01", end="2019-02-04")
    assert endpoint in str(needed.value) and "symbol=XAUUSD, date=2019-02-01" in str(needed.value), str(needed.value)

    eur = run_lake(["sql", "select count(*) as n from bars_1m where symbol = 'EURUSD'", "--format", "csv"], env, home)
    assert eur.returncode == 0 and eur.stdout.split() == ["n", str(outage_lake["bars"].height)], eur.stderr
    assert "warning" in eur.stderr and endpoint in eur.stderr and "Traceback" not in eur.stderr, eur.stderr
    assert_one_line(run_lake(["sql", "select count(*) from bars_1m"], env, home), 1, endpoint,
                    "symbol=XAUUSD, date=2019-02-01")


def test_s3_down_lake_storage_reports_hot_and_warm_and_marks_cold_unreachable(outage_lake, own_s3):
    """S3 server stopped: ``lake storage`` (and ``--json``) still report the warm tier, mark the cold
    tier "unreachable: <endpoint>: <reason>" and exit 1; with S3 back it reports cold again, status 0."""
    env, home, endpoint = outage_lake["env"], outage_lake["home"], own_s3.endpoint
    own_s3.stop()
    try:
        text = run_lake(["storage"], env, home)
        assert text.returncode == 1 and "Traceback" not in text.stdout + text.stderr, text.stderr
        warm_rows = [line.split() for line in text.stdout.splitlines() if line.startswith("bars_1m")]
        assert warm_rows == [["bars_1m", "warm", "1", f"{outage_lake['bars'].height:,}"] + warm_rows[0][4:]], text.stdout
        assert f"cold  total: unreachable: {endpoint}: " in text.stdout, text.stdout
        assert endpoint in text.stderr and len(text.stderr.strip().splitlines()) == 1, text.stderr

        as_json = run_lake(["storage", "--json"], env, home)
        assert as_json.returncode == 1, as_json.stderr
        report = json.loads(as_json.stdout)
        assert report["tier_errors"]["cold"].startswith(f"unreachable: {endpoint}: "), report["tier_errors"]
        assert report["totals"]["cold"]["error"] == report["tier_errors"]["cold"]
        assert report["totals"]["warm"]["partitions"] == 1
        assert [(u["dataset"], u["tier"]) for u in report["datasets"]] == [("bars_1m", "warm")]
    finally:
        own_s3.start()
    back = run_lake(["storage", "--json"], env, home)
    assert back.returncode == 0, back.stderr
    report = json.loads(back.stdout)
    assert report["tier_errors"] == {} and report["totals"]["cold"]["partitions"] == 1, report["totals"]


def test_after_s3_returns_the_live_listing_wins_and_refreshes_the_cold_record(outage_lake, own_s3, own_bucket_env):
    """Another host writes EURUSD 2019-02-05 to the shared cold tier. While S3 is down this host
    cannot know (its warning says so); once S3 is back the live listing is the truth (both days, no
    warning) and refreshes the record, so in the next outage a read of that day fails naming it."""
    settings, bars = outage_lake["settings"], outage_lake["bars"]
    other_home = outage_lake["home"] / "other-host"
    other = Lake(LakeSettings.from_env({**outage_lake["env"], "LAKE_HOME": str(other_home / "lake")}))
    next_day = BARS.partition(symbol="EURUSD", date="2019-02-05")
    other.write(BARS, next_day, _shifted(bars, "EURUSD", 1), tier="cold")

    def read() -> pl.DataFrame:
        return LakeClient(lake=Lake(settings)).read("bars_1m", symbols="EURUSD", start="2019-02-04", end="2019-02-05")

    own_s3.stop()
    try:
        with pytest.warns(ColdTierUnreachableWarning, match="another host"):
            assert read().height == bars.height  # the documented blind spot of the record
    finally:
        own_s3.start()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ColdTierUnreachableWarning)
        both = read()
    assert both.height == 2 * bars.height
    assert both["ts"].dt.date().cast(pl.Utf8).unique().sort().to_list() == ["2019-02-04", "2019-02-05"]
    own_s3.stop()
    try:
        with pytest.raises(ColdTierUnreachable, match="symbol=EURUSD, date=2019-02-05"):
            read()
    finally:
        own_s3.start()


def test_s3_down_a_day_compacted_into_a_cold_month_file_is_still_known_to_be_needed(outage_lake, s3_down_later):
    """The XAUUSD day compacted into its cold month file (its daily file removed): with the S3 server
    stopped, a read of that day fails naming it, and a read of EURUSD still answers from warm."""
    from lake_resources.lifecycle import compact_month

    lake = Lake(outage_lake["settings"])
    result = compact_month(lake, "bars_1m", "XAUUSD", "2019-02")
    assert not lake.cold.exists(BARS, XAU_DAY) and lake.month_holding(BARS, XAU_DAY) is not None, result
    with s3_down_later():
        client = LakeClient(lake=Lake(outage_lake["settings"]))
        with pytest.raises(ColdTierUnreachable, match="symbol=XAUUSD, date=2019-02-01"):
            client.read("bars_1m", symbols="XAUUSD", start="2019-02-01", end="2019-02-01")
        with pytest.warns(ColdTierUnreachableWarning):
            assert client.read("bars_1m", symbols="EURUSD").height == outage_lake["bars"].height

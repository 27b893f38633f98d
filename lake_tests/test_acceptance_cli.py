"""The issues' acceptance commands, run as a user would: the Dagster CLI, then ``lake sql``.

Sources: the real fixtures as a local ``file://`` datafeed, a loopback HTTP mirror, and an ``s3://``
landing bucket on the real S3 server.
"""

from __future__ import annotations

import csv
import functools
import http.server
import io
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from lake_resources.sources.dukascopy import bi5

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "AWS_", "DAGSTER_HOME"))}
    full_env.update(env)
    proc = subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _materialize(select: str, env: dict[str, str]) -> None:
    _run([str(BIN / "dagster"), "asset", "materialize", "-m", "lake_assets.definitions",
          "--select", select, "--partition", "2019-02-04|EURUSD"], env)


def _sql(query: str, env: dict[str, str], fmt: str = "csv") -> list[dict]:
    out = _run([str(BIN / "lake"), "sql", "--format", fmt, query], env).stdout
    return list(csv.DictReader(io.StringIO(out)))


def _tick_count(env) -> int:
    return int(_sql("select count(*) as n from ticks where symbol='EURUSD'", env)[0]["n"])


def test_bars_from_file_datafeed_equal_dukascopy_candles(tmp_path, datafeed_dir):
    env = {"LAKE_HOME": str(tmp_path / "lake"), "LAKE_DUKASCOPY_URL": datafeed_dir.as_uri(),
           "LAKE_DUKASCOPY_FEED": "datafeed"}
    _materialize("+bars_1m", env)
    assert _tick_count(env) == 136741
    rows = _sql("select * from bars_1m where symbol='EURUSD' order by ts", env)
    assert len(rows) == 1440
    day = datetime(2019, 2, 4, tzinfo=timezone.utc)
    base = datafeed_dir / "EURUSD/2019/01/04"
    for side in ("bid", "ask"):
        candles = bi5.decode_candles((base / f"{side.upper()}_candles_min_1.bi5").read_bytes(), day, 100000)
        for row, candle in zip(rows, candles.iter_rows(named=True)):
            assert datetime.fromisoformat(row["ts"]) == candle["ts"]
            for field in ("open", "high", "low", "close"):
                assert float(row[f"{side}_{field}"]) == candle[field], (row["ts"], side, field)
            assert abs(float(row[f"{side}_volume"]) - candle["volume"]) <= 1e-6 * max(1.0, candle["volume"]) + 1e-3


@pytest.fixture
def http_mirror(datafeed_dir):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(datafeed_dir))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_ticks_from_loopback_http_mirror(tmp_path, http_mirror):
    env = {"LAKE_HOME": str(tmp_path / "lake"), "LAKE_DUKASCOPY_URL": http_mirror, "LAKE_DUKASCOPY_FEED": "datafeed"}
    _materialize("+ticks", env)
    assert _tick_count(env) == 136741
    status = _sql("select status, count(*) n from raw_dukascopy group by 1", env)
    assert {r["status"]: int(r["n"]) for r in status} == {"present": 24}


def test_ticks_from_s3_landing_bucket_with_cold_tier_on_s3(tmp_path, s3_server, datafeed_dir):
    import s3fs

    env = s3_server.env("landing-accept")
    fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                           endpoint_url=env["LAKE_S3_ENDPOINT"], skip_instance_cache=True)
    if not fs.exists("landing-accept"):
        fs.mkdir("landing-accept")
    for f in sorted((datafeed_dir / "EURUSD/2019/01/04").glob("*h_ticks.bi5")):
        fs.pipe_file(f"landing-accept/datafeed/EURUSD/2019/01/04/{f.name}", f.read_bytes())
    env |= {"LAKE_HOME": str(tmp_path / "lake"), "LAKE_DUKASCOPY_URL": "s3://landing-accept/datafeed",
            "LAKE_DUKASCOPY_FEED": "datafeed"}
    _materialize("+ticks", env)
    assert _tick_count(env) == 136741
    # The raw zone is on the bucket too: every raw byte kept, re-parseable.
    raw = fs.find("landing-accept/lake/raw/dukascopy/symbol=EURUSD/date=2019-02-04")
    assert len([p for p in raw if p.endswith("h_ticks.bi5")]) == 24
    stored = fs.cat_file("landing-accept/lake/raw/dukascopy/symbol=EURUSD/date=2019-02-04/00h_ticks.bi5")
    assert stored == (datafeed_dir / "EURUSD/2019/01/04/00h_ticks.bi5").read_bytes()


API_SELECTION = ("raw_dukascopy,ticks,bars_1m,bars_1h,bars_1d,vendor_candles_1m,vendor_candles_1h,vendor_candles_1d")


def test_lake_backfill_from_loopback_api_gives_the_vendors_ticks_and_bars_with_the_check_green(tmp_path, api_server,
                                                                                               datafeed_dir):
    """Issue 14's acceptance: `lake backfill` on the default feed against a loopback server of the API
    layout (the real fixture day EURUSD 2019-02-04, served as the API serves it)."""
    import dagster as dg

    env = {"LAKE_HOME": str(tmp_path / "lake"), "LAKE_DUKASCOPY_API": api_server.base,
           "DAGSTER_HOME": str(tmp_path / "dagster"), "LAKE_DUKASCOPY_API_PAUSE": "0"}
    _run([str(BIN / "lake"), "backfill", "--start", "2019-02-04", "--end", "2019-02-04", "--symbols", "EURUSD",
          "--select", API_SELECTION], env)
    assert api_server.count("ticks/EUR-USD/2019/2/4/0") == 1  # the default feed is the API
    feeds = _sql("select feed, status, count(*) n from raw_dukascopy group by 1, 2", env)
    assert [(r["feed"], r["status"], int(r["n"])) for r in feeds] == [("api", "present", 24)]
    # ticks equal the vendor's: the same ts/bid/ask as the day's BI5 files
    day = datetime(2019, 2, 4, tzinfo=timezone.utc)
    hours = [(datafeed_dir / bi5.hour_path("EURUSD", h)).read_bytes() for h in bi5.day_hours(day.date())]
    expected = bi5.decode_day_ticks(hours, day.date(), 100000)
    got = _sql("select epoch_ns(ts) ns, bid, ask from ticks where symbol='EURUSD' order by ts", env)
    assert len(got) == expected.height == 136741
    assert [int(r["ns"]) for r in got] == expected["ts"].dt.epoch("ns").to_list()
    assert [float(r["bid"]) for r in got] == expected["bid"].to_list()
    assert [float(r["ask"]) for r in got] == expected["ask"].to_list()
    # bars equal the vendor's minute candles
    rows = _sql("select * from bars_1m where symbol='EURUSD' order by ts", env)
    base = datafeed_dir / "EURUSD/2019/01/04"
    for side in ("bid", "ask"):
        candles = bi5.decode_candles((base / f"{side.upper()}_candles_min_1.bi5").read_bytes(), day, 100000)
        assert len(rows) == candles.height == 1440
        for row, candle in zip(rows, candles.iter_rows(named=True)):
            for field in ("open", "high", "low", "close"):
                assert float(row[f"{side}_{field}"]) == candle[field], (row["ts"], side, field)
    # ... and the check says so, through Dagster, for minutes, hours and the day
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for bars in ("bars_1m", "bars_1h", "bars_1d"):
            key = dg.AssetCheckKey(dg.AssetKey(bars), "matches_vendor_candles")
            record = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)[0]
            evaluation = record.event.dagster_event.event_specific_data
            assert evaluation.passed, (bars, evaluation.description)
            assert evaluation.metadata["compared"].value is True, (bars, evaluation.description)
            assert evaluation.metadata["periods_compared"].value == {"bars_1m": 1440, "bars_1h": 24, "bars_1d": 1}[bars]


def test_todays_partition_materializes_during_the_day_and_a_rerun_fetches_only_what_is_new(tmp_path):
    """LAKE_TODAY_PARTITION=on: today's symbol-day through Dagster on the API feed; completed hours are
    cached, the current hour is read with ?from= on each run, future hours are not asked."""
    from lake_resources.generate import generate
    from lake_tests.api_server import ApiServer

    today = datetime.now(timezone.utc).date()
    generate(tmp_path / "gen", ["BTCUSD"], today, today, seed=2, ticks_per_day=3000, empty_hour_probability=0.0,
             layouts=("api",))
    server = ApiServer(tmp_path / "gen" / "dukascopy-api")
    env = {"LAKE_HOME": str(tmp_path / "lake"), "LAKE_DUKASCOPY_API": server.base, "LAKE_TODAY_PARTITION": "on",
           "LAKE_DUKASCOPY_API_PAUSE": "0"}
    args = [str(BIN / "dagster"), "asset", "materialize", "-m", "lake_assets.definitions", "--select",
            "raw_dukascopy,ticks", "--partition", f"{today.isoformat()}|BTCUSD"]

    def hour_path(h: int) -> str:
        return f"ticks/BTC-USD/{today.year}/{today.month}/{today.day}/{h}"

    try:
        first_hour = datetime.now(timezone.utc).hour
        _run(args, env)
        asked = [p for p, _ in server.requests]
        current = datetime.now(timezone.utc).hour
        status = {int(r["hour"]): r["status"] for r in _sql("select hour, status from raw_dukascopy", env)}
        assert all(status[h] == "present" for h in range(first_hour + 1))  # completed hours and the current one
        assert all(status[h] == "missing" for h in range(current + 1, 24))  # the future: not yet
        assert not any(hour_path(h) in asked for h in range(current + 1, 24))  # ... never asked
        assert any("?from=" in p for p in asked)  # the current hour in the ?from= form
        assert _tick_count_of(env, "BTCUSD") > 0
        before = len(server.requests)
        _run(args, env)
        again = [p for p, _ in server.requests[before:]]
        # completed hours of the first run come from the cache; only the current hour (and any hour
        # completed since) is asked again
        assert not any(hour_path(h) in again for h in range(first_hour))
        assert any("?from=" in p for p in again)
        assert len(again) <= 2 + (datetime.now(timezone.utc).hour - first_hour)
    finally:
        server.close()


def _tick_count_of(env, symbol: str) -> int:
    return int(_sql(f"select count(*) as n from ticks where symbol='{symbol}'", env)[0]["n"])


def test_today_partition_switch_adds_today_and_keeps_yesterday_automated():
    """``LAKE_TODAY_PARTITION=on`` adds the current UTC day as the last daily partition; the schedule's day
    (yesterday) still flows downstream, because downstream assets follow updates of any partition
    (``follow_upstream``, not ``eager()``'s latest-partition-only rule; its behaviour is tested in
    test_operate.py::test_automation_follows_a_rematerialized_old_partition)."""
    probe = ("import dagster as dg; from lake_assets.definitions import defs; "
             "from lake_assets.partitions import date_partitions as d; "
             "c = defs.resolve_asset_graph().get(dg.AssetKey('bars_1m')).automation_condition; "
             "print(d.get_last_partition_key(), c.get_label())")
    today = datetime.now(timezone.utc).date()
    on = _run([sys.executable, "-c", probe], {"LAKE_TODAY_PARTITION": "on"}).stdout.split()
    off = _run([sys.executable, "-c", probe], {}).stdout.split()
    assert on == [today.isoformat(), "follow_upstream"]
    assert off[0] < today.isoformat() and off[1] == "follow_upstream"

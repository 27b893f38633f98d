"""Operating the lake: the definitions read like documentation, the daily schedule and automation,
``lake demo`` (materializes, then skips what is there), ``lake backfill`` (a real Dagster backfill,
one run per symbol range) and ``lake ui`` (webserver + daemon on loopback, clean stop on SIGTERM)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lake_assets.automation import (
    AUTOMATED_GROUPS,
    DAILY_FRESHNESS,
    DOMAIN_GROUPS,
    build_daily_ingest_schedule,
    daily_ingest_roots,
)
from lake_assets.cli.backfill import run_backfill
from lake_assets.cli.common import QUIET_RUN_CONFIG, lake_resources_for, quiet_dagster
from lake_assets.cli.demo import run_demo
from lake_resources.catalog.instruments import decimal_factor
from lake_resources.settings import LakeSettings
from lake_resources.sources.dukascopy import bi5
from lake_resources.storage import Lake

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DAY = date(2019, 2, 4)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

quiet_dagster()


@pytest.fixture(scope="module")
def defs():
    from lake_assets.definitions import defs

    return defs


@pytest.fixture
def lake_env(tmp_path, monkeypatch):
    """A fresh LAKE_HOME and DAGSTER_HOME (with the project's dagster.yaml) in tmp_path."""
    home = tmp_path / "lake"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    monkeypatch.setenv("LAKE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    return LakeSettings.from_env()


def fixture_ticks(datafeed_dir: Path) -> pl.DataFrame:
    """The real EURUSD day decoded straight from its 24 BI5 files (independent of the pipeline)."""
    payloads = []
    for hour in bi5.day_hours(FIXTURE_DAY):
        path = datafeed_dir / bi5.hour_path("EURUSD", hour)
        payloads.append(path.read_bytes() if path.exists() else None)
    return bi5.decode_day_ticks(payloads, FIXTURE_DAY, decimal_factor("EURUSD"))


def job_for(defs, settings, dukascopy_url, jobs=(), schedules=()):
    resources = {**defs.resources, **lake_resources_for(settings, dukascopy_url=dukascopy_url,
                                                                  dukascopy_feed="datafeed")}
    return dg.Definitions(assets=list(defs.assets), asset_checks=list(defs.asset_checks), resources=resources,
                          jobs=list(jobs), schedules=list(schedules))


# ------------------------------------------------------------------------------------------ definitions
def test_asset_graph_reads_like_documentation(defs):
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.materializable_asset_keys)
    assert {graph.get(k).group_name for k in keys} <= set(DOMAIN_GROUPS)
    for key in keys:
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description and len(node.description) > 20, f"{name}: no description"
        assert node.owners, f"{name}: no owners"
        assert node.code_version, f"{name}: no code version"
        assert {"parquet", "duckdb", "s3"} & set(node.kinds), f"{name}: kinds {node.kinds} name no storage"
    roots = daily_ingest_roots(graph)
    assert dg.AssetKey("raw_dukascopy") in roots and dg.AssetKey("ticks") not in roots
    daily = [k for k in keys if graph.get(k).partitions_def is not None
             and {d.name for d in getattr(graph.get(k).partitions_def, "partitions_defs", [])} == {"date", "symbol"}]
    assert {"raw_dukascopy", "ticks", "bars_1m", "bars_1d"} <= {k.to_user_string() for k in daily}
    for key in daily:
        assert graph.get(key).freshness_policy == DAILY_FRESHNESS, f"{key.to_user_string()}: no freshness policy"
    for key in keys:
        node = graph.get(key)
        if node.group_name in AUTOMATED_GROUPS and key not in roots and node.parent_keys:
            assert node.automation_condition is not None, f"{key.to_user_string()} does not follow its upstream"
    for key in roots:
        assert graph.get(key).automation_condition is None  # scheduled, not automated
    repo = defs.get_repository_def()
    assert repo.has_schedule_def("daily_ingest_schedule") and repo.has_sensor_def("lake_automation")
    assert defs.executor is dg.in_process_executor


def test_daily_schedule_ingests_yesterday_for_every_symbol_in_one_run(defs, lake_settings, datafeed_dir):
    graph = defs.resolve_asset_graph()
    roots = daily_ingest_roots(graph)
    job, schedule = build_daily_ingest_schedule(roots)
    when = datetime(2019, 2, 5, 1, 15, tzinfo=timezone.utc)
    requests = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when)).run_requests
    (request,) = requests
    symbols = LakeSettings.from_env().symbols
    assert request.tags[RANGE_START] == f"2019-02-04|{symbols[0]}"
    assert request.tags[RANGE_END] == f"2019-02-04|{symbols[-1]}"
    # the request runs as it is: one run stores yesterday's raw partition of every configured symbol
    with dg.DagsterInstance.ephemeral() as instance:
        resolved = job_for(defs, lake_settings, datafeed_dir.as_uri(), jobs=[job]).resolve_job_def(job.name)
        result = resolved.execute_in_process(instance=instance, tags=request.tags, run_config=QUIET_RUN_CONFIG)
        assert result.success
        materialized = instance.get_materialized_partitions(dg.AssetKey("raw_dukascopy"))
    assert materialized == {f"2019-02-04|{s}" for s in symbols}
    raw = Lake(lake_settings).read_partition("raw_dukascopy", (("symbol", "EURUSD"), ("date", "2019-02-04")))
    assert raw.height == 24 and set(raw["status"]) == {"present"}  # the real fixture day has 24 files


def test_downstream_follows_a_new_ingest_by_automation(defs, lake_settings, datafeed_dir):
    day_after = datetime(2019, 2, 5, 2, 0, tzinfo=timezone.utc)  # 2019-02-04 is the latest complete day
    with dg.DagsterInstance.ephemeral() as instance:
        lake_defs = job_for(defs, lake_settings, datafeed_dir.as_uri())
        first = dg.evaluate_automation_conditions(defs=lake_defs, instance=instance, evaluation_time=day_after)
        assert first.get_requested_partitions(dg.AssetKey("ticks")) == set()  # nothing ingested yet
        result = lake_defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, partition_key="2019-02-04|EURUSD", asset_selection=[dg.AssetKey("raw_dukascopy")],
            run_config=QUIET_RUN_CONFIG,
        )
        assert result.success
        second = dg.evaluate_automation_conditions(
            defs=lake_defs, instance=instance, evaluation_time=day_after, cursor=first.cursor,
        )
    assert second.get_requested_partitions(dg.AssetKey("ticks")) == {"2019-02-04|EURUSD"}
    # bars wait for ticks (their parent is not materialized yet)
    assert second.get_requested_partitions(dg.AssetKey("bars_1m")) == set()


def test_automation_follows_a_rematerialized_old_partition(defs, lake_settings, datafeed_dir):
    """A backfill re-materializing ``bars_1m`` of an old day (not the latest time window) makes the
    automation request that day's roll-ups and features; a run that already built them requests nothing."""
    old = "2019-02-04|EURUSD"
    later = datetime(2019, 3, 20, 2, 0, tzinfo=timezone.utc)  # 2019-02-04 is weeks behind the latest day
    followers = [dg.AssetKey(k) for k in ("bars_5m", "bars_1h", "bars_1d", "features")]
    with dg.DagsterInstance.ephemeral() as instance:
        lake_defs = job_for(defs, lake_settings, datafeed_dir.as_uri())
        job = lake_defs.resolve_implicit_global_asset_job_def()
        first = dg.evaluate_automation_conditions(defs=lake_defs, instance=instance, evaluation_time=later)
        whole = [dg.AssetKey(k) for k in ("raw_dukascopy", "ticks", "bars_1m")] + followers
        assert job.execute_in_process(instance=instance, partition_key=old, asset_selection=whole,
                                      run_config=QUIET_RUN_CONFIG).success
        second = dg.evaluate_automation_conditions(defs=lake_defs, instance=instance, evaluation_time=later,
                                                   cursor=first.cursor)
        for key in followers:  # built in the same run as their parents: nothing to follow
            assert second.get_requested_partitions(key) == set(), key.to_user_string()
        # the backfill of the old day: bars_1m alone
        assert job.execute_in_process(instance=instance, partition_key=old, asset_selection=[dg.AssetKey("bars_1m")],
                                      run_config=QUIET_RUN_CONFIG).success
        third = dg.evaluate_automation_conditions(defs=lake_defs, instance=instance, evaluation_time=later,
                                                  cursor=second.cursor)
    for key in followers:
        assert old in third.get_requested_partitions(key), key.to_user_string()
    assert third.get_requested_partitions(dg.AssetKey("ticks")) == set()  # upstream of bars_1m: untouched
    node = defs.resolve_asset_graph().get(dg.AssetKey("bars_5m"))
    assert "any date" in node.description and "need a backfill" in node.description  # said in the UI


# ------------------------------------------------------------------------------------------ lake demo
def test_demo_materializes_by_group_and_then_skips_what_is_there(lake_env):
    settings = lake_env
    lines: list[str] = []
    assert run_demo(settings, days=2, symbols="EURUSD,XAUUSD", ticks_per_day=3000,
                    groups=("ingest", "canonical"), say=lines.append) == 0
    out = "\n".join(lines)
    days = ["2019-02-14", "2019-02-15"]  # the last two trading days of the fixed demo window
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        ranges = sorted((r.tags[RANGE_START], r.tags[RANGE_END]) for r in runs)
        # one run per group step and symbol, each over the whole window
        assert len(runs) == 4 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert ranges == sorted([(f"{days[0]}|{s}", f"{days[-1]}|{s}") for s in ("EURUSD", "XAUUSD")] * 2)
        for key in ("raw_dukascopy", "ticks", "bars_1m", "bars_1d"):
            assert instance.get_materialized_partitions(dg.AssetKey(key)) == {f"{d}|{s}" for d in days for s in ("EURUSD", "XAUUSD")}
    # the stored ticks are the generated BI5 files, decoded independently
    lake = Lake(settings)
    landing = settings.landing_root / "dukascopy"
    for symbol in ("EURUSD", "XAUUSD"):
        for day in days:
            d = date.fromisoformat(day)
            payloads = [(landing / bi5.hour_path(symbol, h)).read_bytes() if (landing / bi5.hour_path(symbol, h)).exists() else None
                        for h in bi5.day_hours(d)]
            decoded = bi5.decode_day_ticks(payloads, d, decimal_factor(symbol))
            stored = lake.read_partition("ticks", (("symbol", symbol), ("date", day)))
            assert stored.height == decoded.height > 0
    assert "Asset checks" in out and "passed" in out and "lake ui" in out and str(settings.warm_path) in out
    # the lake remembers what the demo put in it (its partitions, its feed): LAKE_HOME/lake.toml
    remembered = LakeSettings.from_env()
    assert remembered.symbols == ("EURUSD", "XAUUSD") and remembered.start_date == days[0]
    assert remembered.dukascopy_url == str(settings.landing_root / "dukascopy")

    # again: nothing to do, no new run
    lines.clear()
    assert run_demo(settings, days=2, symbols="EURUSD,XAUUSD", ticks_per_day=3000,
                    groups=("ingest", "canonical"), say=lines.append) == 0
    assert "re-using it" in "\n".join(lines) and "0 run(s)" in lines[-1]
    assert sum("up to date" in line for line in lines) == 2
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == 4

    # a partition gone from the lake is made again, alone (and, since its logical data version now
    # comes from a one-day run rather than a two-day range, the same partition downstream)
    lake.delete("ticks", (("symbol", "XAUUSD"), ("date", days[0])), "hot")
    lines.clear()
    assert run_demo(settings, days=2, symbols="EURUSD,XAUUSD", ticks_per_day=3000,
                    groups=("ingest", "canonical"), say=lines.append) == 0
    with dg.DagsterInstance.get() as instance:
        new_runs = instance.get_runs()[:-4]
    assert 1 <= len(new_runs) <= 2
    for run in new_runs:
        assert (run.tags[RANGE_START], run.tags[RANGE_END]) == (f"{days[0]}|XAUUSD", f"{days[0]}|XAUUSD")
    assert dg.AssetKey("ticks") in new_runs[-1].asset_selection
    assert lake.read_partition("ticks", (("symbol", "XAUUSD"), ("date", days[0]))).height > 0


# ------------------------------------------------------------------------------------------ lake backfill
def test_backfill_is_a_real_dagster_backfill_with_one_run_per_symbol_range(lake_env, monkeypatch, datafeed_dir):
    monkeypatch.setenv("LAKE_DUKASCOPY_URL", datafeed_dir.as_uri())
    monkeypatch.setenv("LAKE_DUKASCOPY_FEED", "datafeed")
    lines: list[str] = []
    code = run_backfill(lake_env, start="2019-02-04", end="2019-02-04", symbols="EURUSD",
                        selection="raw_dukascopy,ticks,bars_1m", say=lines.append, poll_seconds=0.5)
    assert code == 0, "\n".join(lines)
    assert "COMPLETED_SUCCESS" in lines[-1]
    assert any("ticks 1/1" in line for line in lines)  # progress was shown while it ran
    with dg.DagsterInstance.get() as instance:
        (backfill,) = instance.get_backfills()
        assert backfill.is_asset_backfill and backfill.tags["lake/launched_by"] == "lake backfill"
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        assert len(runs) == 1  # raw -> ticks -> bars_1m in one run, not one per asset or partition
        (run,) = runs
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert (run.tags[RANGE_START], run.tags[RANGE_END]) == ("2019-02-04|EURUSD", "2019-02-04|EURUSD")
        assert set(run.asset_selection) == {dg.AssetKey(k) for k in ("raw_dukascopy", "ticks", "bars_1m")}
    decoded = fixture_ticks(datafeed_dir)
    lake = Lake(lake_env)
    ticks = lake.read_partition("ticks", (("symbol", "EURUSD"), ("date", "2019-02-04")))
    bars = lake.read_partition("bars_1m", (("symbol", "EURUSD"), ("date", "2019-02-04")))
    assert ticks.height == decoded.height
    assert bars.height == decoded["ts"].dt.truncate("1m").n_unique()


def test_backfill_takes_over_when_the_daemon_stops_heart_beating(lake_env, monkeypatch, datafeed_dir):
    """A daemon heart-beats when the backfill starts (so the command leaves the work to it), then stops:
    once its heartbeat is older than the bound, the command runs the iterations itself and finishes."""
    import threading

    from dagster._daemon.types import DaemonHeartbeat

    monkeypatch.setenv("LAKE_DUKASCOPY_URL", datafeed_dir.as_uri())
    monkeypatch.setenv("LAKE_DUKASCOPY_FEED", "datafeed")
    lines: list[str] = []
    stopped = threading.Event()

    def daemon_that_stops() -> None:  # beats until the command has left the work to it, then stops
        with dg.DagsterInstance.get() as instance:
            while not stopped.is_set():
                for daemon_type in ("BACKFILL", "QUEUED_RUN_COORDINATOR"):
                    instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), daemon_type, "ui-that-stops", None))
                if any("processed by the running daemon" in line for line in lines):
                    stopped.set()
                time.sleep(0.2)

    beating = threading.Thread(target=daemon_that_stops, daemon=True)
    beating.start()
    time.sleep(0.5)
    try:
        code = run_backfill(lake_env, start="2019-02-04", end="2019-02-04", symbols="EURUSD",
                            selection="raw_dukascopy,ticks", say=lines.append, poll_seconds=0.5, heartbeat_max_age=3)
    finally:
        stopped.set()
        beating.join(timeout=10)
    out = "\n".join(lines)
    assert code == 0, out
    assert "processed by the running daemon" in out and "this command takes over" in out
    assert "COMPLETED_SUCCESS" in lines[-1]


def test_backfill_refuses_what_it_cannot_do(lake_env):
    from lake_resources.catalog.validation import LakeValidationError

    with pytest.raises(LakeValidationError, match="NOPE"):
        run_backfill(lake_env, start="2019-02-04", end="2019-02-05", symbols="NOPE", say=lambda _: None)
    with pytest.raises(LakeValidationError, match="before"):
        run_backfill(lake_env, start="2019-02-05", end="2019-02-04", symbols="EURUSD", say=lambda _: None)


# ------------------------------------------------------------------------------------------ lake ui
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]) if len(addr) == 8 else addr)
    return found


def _graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def test_lake_ui_serves_on_loopback_with_daemon_and_stops_cleanly(lake_env, tmp_path):
    port = _free_port()
    log = tmp_path / "ui.log"
    env = {**os.environ, "LAKE_HOME": str(lake_env.home_abs), "DAGSTER_HOME": str(lake_env.dagster_home)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "lake"), "ui", "--port", str(port)],
                                cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        healthy: dict = {}
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                statuses = _graphql(base, "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }")
                healthy = {d["daemonType"]: d["healthy"] for d in statuses["instance"]["daemonHealth"]["allDaemonStatuses"]}
                if healthy and all(healthy.values()):
                    break
            except OSError:
                pass
            time.sleep(1)
        assert proc.poll() is None, log.read_text()[-3000:]
        assert {"SENSOR", "SCHEDULER", "BACKFILL", "QUEUED_RUN_COORDINATOR"} <= set(healthy) and all(healthy.values()), healthy
        assert _listening_addresses(port) == {"127.0.0.1"}
        # the UI serves this lake's definitions, with the schedule and the sensors
        data = _graphql(base, "{ repositoriesOrError { ... on RepositoryConnection { nodes { "
                              "schedules { name } sensors { name } } } } }")
        (repo,) = data["repositoriesOrError"]["nodes"]
        assert "daily_ingest_schedule" in {s["name"] for s in repo["schedules"]}
        assert {"lake_automation", "vendor_landing_sensor"} <= {s["name"] for s in repo["sensors"]}
        family = _descendants(proc.pid)
        assert len(family) >= 3  # dagster dev, webserver, daemon (and code servers)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log.read_text()[-3000:]
    def alive() -> list[int]:
        out = []
        for pid in family:
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    out.append(pid)
            except OSError:
                pass
        return out

    deadline = time.monotonic() + 15
    while alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(), f"left running after lake ui stopped: {alive()}"
    assert "stopping (signal SIGTERM)" in log.read_text()


def test_demo_gives_a_vendor_symbol_no_dukascopy_partitions(lake_env):
    """``lake demo`` with AAPL (a vendor symbol): no raw_dukascopy/ticks partition for AAPL, neither in
    Dagster nor in the lake (they used to be materialized empty); AAPL still gets its bars from the
    vendor pulls, and a second demo has nothing to do."""
    settings = lake_env
    lines: list[str] = []
    assert run_demo(settings, days=1, symbols="EURUSD,AAPL", ticks_per_day=2000,
                    groups=("ingest", "canonical"), say=lines.append) == 0, "\n".join(lines)
    day = "2019-02-15"
    lake = Lake(settings)
    with dg.DagsterInstance.get() as instance:
        for key in ("raw_dukascopy", "ticks", "vendor_candles_1m", "vendor_candles_1h", "vendor_candles_1d"):
            assert instance.get_materialized_partitions(dg.AssetKey(key)) == {f"{day}|EURUSD"}, key
        assert instance.get_materialized_partitions(dg.AssetKey("bars_1m")) == {f"{day}|EURUSD", f"{day}|AAPL"}
    for dataset in ("raw_dukascopy", "ticks", "vendor_candles_1m", "vendor_candles_1h", "vendor_candles_1d"):
        assert lake.find(dataset, (("symbol", "AAPL"), ("date", day))) is None, dataset
    assert lake.read_partition("bars_1m", (("symbol", "AAPL"), ("date", day))).height > 0
    lines.clear()
    assert run_demo(settings, days=1, symbols="EURUSD,AAPL", ticks_per_day=2000,
                    groups=("ingest", "canonical"), say=lines.append) == 0
    assert "0 run(s)" in lines[-1], "\n".join(lines)

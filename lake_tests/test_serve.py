"""``lake serve`` end to end: a real uvicorn server on a free loopback port over a real lake (the real
EURUSD fixture day in the hot tier, a shifted copy in the cold tier, minute bars in the warm tier)."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pytest
import requests

READ_TOKEN = "reader-token-0123456789abcdef"
SQL_TOKEN = "analyst-token-fedcba9876543210"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def served(tmp_path_factory, day_ticks, bars_1m):

    from lake_resources.client import LakeClient
    from lake_resources.serve.app import create_app
    from lake_resources.serve.auth import TokenStore
    from lake_resources.settings import LakeSettings
    from lake_resources.storage import Lake

    settings = LakeSettings(home=tmp_path_factory.mktemp("serve") / "lake", symbols=("EURUSD", "XAUUSD", "AAPL"))
    lake = Lake(settings)
    spec_days = [("2019-02-04", 0, "hot"), ("2019-02-05", 1, "cold"), ("2019-02-06", 2, "hot")]
    for day, shift, tier in spec_days:
        ticks = day_ticks.with_columns((pl.col("ts") + pl.duration(days=shift)).cast(day_ticks.schema["ts"]))
        lake.write("ticks", (("symbol", "EURUSD"), ("date", day)), ticks, tier=tier)
        bars = bars_1m.with_columns((pl.col("ts") + pl.duration(days=shift)).cast(bars_1m.schema["ts"]))
        lake.write("bars_1m", (("symbol", "EURUSD"), ("date", day)), bars)
    # generated data: a second symbol, with a different price level
    xau = day_ticks.with_columns(pl.lit("XAUUSD").alias("symbol"), pl.col("bid") * 1100, pl.col("ask") * 1100)
    lake.write("ticks", (("symbol", "XAUUSD"), ("date", "2019-02-04")), xau)

    handler = _Records()
    log = logging.getLogger("lake.serve")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    tokens = TokenStore.load(env={"LAKE_SERVE_TOKENS": f"alice:read:{READ_TOKEN},bob:sql:{SQL_TOKEN}"})
    server, thread, url = _start(create_app(settings, tokens))
    yield {"url": url, "local": LakeClient(settings), "settings": settings, "log": handler}
    server.should_exit = True
    thread.join(10)
    log.removeHandler(handler)


def _start(app, host: str = "127.0.0.1"):
    """A real uvicorn server for ``app`` on a free port, in a thread; (server, thread, loopback url)."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def _get(served, path, token=READ_TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(served["url"] + path, params=params, headers=headers, timeout=60)


def _remote(served, token=READ_TOKEN):
    from lake_resources.client import LakeClient

    return LakeClient(url=served["url"], token=token)


# -- every endpoint against the local client -------------------------------------------------------
def test_health_and_docs(served):
    assert _get(served, "/health", token=None).json()["status"] == "ok"
    assert _get(served, "/docs", token=None).status_code == 200
    assert "/datasets/{name}/rows" in _get(served, "/openapi.json", token=None).json()["paths"]


def test_datasets_lists_tiers_schema_and_counts(served):
    body = _get(served, "/datasets").json()
    ticks = next(d for d in body["datasets"] if d["name"] == "ticks")
    assert ticks["partitions"] == 4 and ticks["partition_by"] == ["symbol", "date"]
    assert ticks["rows"] == 4 * 136_741
    assert ticks["tiers"] == {"hot": {"partitions": 3, "rows": 3 * 136_741}, "cold": {"partitions": 1, "rows": 136_741}}
    assert {"ts", "bid", "ask"} <= set(ticks["schema"])
    assert _get(served, "/datasets/bars_1m").json()["tiers"]["warm"]["partitions"] == 3


def test_partitions_match_local(served):
    body = _get(served, "/datasets/ticks/partitions", symbols="EURUSD", start="2019-02-04", end="2019-02-05").json()
    local = served["local"].partitions("ticks", symbols=["EURUSD"], start="2019-02-04", end="2019-02-05")
    assert [(p["partition"], p["tier"]) for p in body["partitions"]] == [
        ("symbol=EURUSD/date=2019-02-04", "hot"), ("symbol=EURUSD/date=2019-02-05", "cold")]
    assert len(local) == 2 and all(p["rows"] == 136_741 and len(p["sha256"]) == 64 for p in body["partitions"])
    assert _remote(served).partitions("ticks", symbols="EURUSD", start="2019-02-04", end="2019-02-05") == local
    with pytest.raises(ValueError, match="501: as_of: versioned"):  # LakeValidationError: kept ready, not faked
        _remote(served).partitions("ticks", symbols="EURUSD", as_of="2019-02-05")


def test_coverage_days_and_hours(served):
    body = _get(served, "/datasets/ticks/coverage", symbol="EURUSD", start="2019-02-03", end="2019-02-08").json()
    assert [(d["date"], d["status"]) for d in body["days"]] == [
        ("2019-02-03", "missing"), ("2019-02-04", "present"), ("2019-02-05", "present"), ("2019-02-06", "present"),
        ("2019-02-07", "missing"), ("2019-02-08", "missing")]
    assert body["missing_intervals"] == [
        {"start": "2019-02-03T00:00:00+00:00", "end": "2019-02-04T00:00:00+00:00"},
        {"start": "2019-02-07T00:00:00+00:00", "end": "2019-02-09T00:00:00+00:00"}]
    hours = _get(served, "/datasets/ticks/coverage", symbol="EURUSD", start="2019-02-04", end="2019-02-04",
                 granularity="hour").json()["hours"]
    assert len(hours) == 24 and all(h["status"] == "present" for h in hours)
    assert sum(h["rows"] for h in hours) == 136_741


READS = [
    dict(dataset="ticks", symbols=["EURUSD"], start="2019-02-04", end="2019-02-06"),  # hot, cold, hot
    dict(dataset="ticks", symbols=["EURUSD", "XAUUSD"], start="2019-02-04T10:00:00", end="2019-02-04T11:00:00",
         columns=["ts", "symbol", "bid"]),
    dict(dataset="bars_1m", symbols=["EURUSD"], start="2019-02-04", end="2019-02-05"),  # warm
]


@pytest.mark.parametrize("case", READS, ids=["ticks-3-tiers", "ticks-hour-2-symbols", "bars-warm"])
def test_remote_read_equals_local(served, case):
    kwargs = {k: v for k, v in case.items() if k != "dataset"}
    local = served["local"].read(case["dataset"], **kwargs)
    remote = _remote(served).read(case["dataset"], **kwargs)
    assert remote.schema == local.schema
    assert remote.equals(local)
    assert remote.height > 0


@pytest.mark.parametrize("fmt", ["arrow", "parquet", "json", "csv"])
def test_every_format_same_rows(served, fmt):
    local = served["local"].read("bars_1m", symbols="EURUSD", start="2019-02-04", end="2019-02-05",
                                 columns=["ts", "symbol", "close", "tick_count"])
    r = _get(served, "/datasets/bars_1m/rows", symbols="EURUSD", start="2019-02-04", end="2019-02-05",
             columns="ts,symbol,close,tick_count", format=fmt)
    assert r.status_code == 200, r.text
    data = io.BytesIO(r.content)
    if fmt == "arrow":
        got = pl.read_ipc_stream(data)
    elif fmt == "parquet":
        got = pl.read_parquet(data)
    elif fmt == "json":
        got = pl.read_ndjson(data, schema=local.schema)
    else:
        got = pl.read_csv(data, schema=local.schema)
    assert got.equals(local)


def test_where_filter_matches_local_filter(served):
    local = served["local"].read("ticks", symbols="EURUSD", start="2019-02-04", end="2019-02-04")
    expected = local.filter((pl.col("bid") > 1.1440) & (pl.col("ask_volume") >= 1.0))
    got = _remote(served).read("ticks", symbols="EURUSD", start="2019-02-04", end="2019-02-04",
                               where="bid > 1.1440 and ask_volume >= 1")
    assert 0 < got.height < local.height and got.equals(expected)


def test_cursor_pages_lose_and_repeat_nothing(served):
    local = served["local"].read("ticks", symbols=["EURUSD", "XAUUSD"], start="2019-02-04", end="2019-02-06",
                                 columns=["ts", "symbol", "bid"])
    pages, cursor = [], None
    while True:
        params = dict(symbols="EURUSD,XAUUSD", start="2019-02-04", end="2019-02-06", columns="ts,symbol,bid",
                      limit=100_000)
        if cursor:
            params["cursor"] = cursor
        r = _get(served, "/datasets/ticks/rows", **params)
        assert r.status_code == 200, r.text
        pages.append(pl.read_ipc_stream(io.BytesIO(r.content)))
        cursor = r.headers.get("X-Lake-Next-Cursor")
        if not cursor:
            break
        assert len(pages) < 20
    assert [p.height for p in pages[:-1]] == [100_000] * (len(pages) - 1)
    assert pl.concat(pages).equals(local)  # same rows, same order: none lost, none repeated
    bad = _get(served, "/datasets/ticks/rows", symbols="EURUSD", limit=10, cursor=cursor or "x" * 20)
    assert bad.status_code == 400


def test_sql_endpoint_matches_local_and_limits(served):
    q = "SELECT symbol, count(*) AS n, max(bid) AS top FROM ticks GROUP BY symbol ORDER BY symbol"
    r = requests.post(served["url"] + "/sql", json={"query": q, "format": "arrow"},
                      headers={"Authorization": f"Bearer {SQL_TOKEN}"}, timeout=60)
    assert r.status_code == 200, r.text
    assert pl.read_ipc_stream(io.BytesIO(r.content)).equals(served["local"].sql(q))
    assert _remote(served, SQL_TOKEN).sql(q).equals(served["local"].sql(q))
    r = requests.post(served["url"] + "/sql", json={"query": "SELECT * FROM ticks", "limit": 5, "format": "json"},
                      headers={"Authorization": f"Bearer {SQL_TOKEN}"}, timeout=60)
    assert r.status_code == 200 and r.headers["X-Lake-Truncated"] == "true"
    assert len(r.text.splitlines()) == 5


# -- auth ----------------------------------------------------------------------------------------------
def test_auth_no_token_wrong_token_wrong_scope(served):
    assert _get(served, "/datasets", token=None).status_code == 401
    assert _get(served, "/datasets", token="not-a-real-token-at-all").status_code == 401
    r = requests.post(served["url"] + "/sql", json={"query": "SELECT 1"},
                      headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=30)
    assert r.status_code == 403 and "sql scope" in r.json()["error"]
    with pytest.raises(Exception, match="401"):
        _remote(served, token="wrong-token-wrong-token").read("ticks", symbols="EURUSD", start="2019-02-04",
                                                               end="2019-02-04")


def test_requests_logged_with_who_and_rows_never_tokens(served):
    _get(served, "/datasets/bars_1m/rows", symbols="EURUSD", start="2019-02-04", end="2019-02-04")
    _get(served, "/datasets", token="some-wrong-token-value-123")
    lines = served["log"].lines
    assert lines, "no request log lines"
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    rows = [e for e in entries if e["path"] == "/datasets/bars_1m/rows" and e["status"] == 200]
    assert rows and rows[-1]["who"] == "alice" and rows[-1]["rows"] == 1440
    text = "\n".join(lines)
    for secret in (READ_TOKEN, SQL_TOKEN, "some-wrong-token-value-123"):
        assert secret not in text


def test_token_file_and_bad_entries(tmp_path):
    from lake_resources.catalog.validation import LakeValidationError
    from lake_resources.serve.auth import TokenStore

    f = tmp_path / "tokens"
    f.write_text(f"# team tokens\nalice:read:{READ_TOKEN}\n\nbot:sql:{SQL_TOKEN}\n")
    store = TokenStore.load(f, env={})
    assert store.who(f"Bearer {SQL_TOKEN}").name == "bot" and store.who(f"Bearer {READ_TOKEN}").scope == "read"
    assert store.who("Bearer nope") is None and store.who(None) is None
    f.write_text("alice:admin:" + READ_TOKEN + "\n")
    with pytest.raises(LakeValidationError, match="line 1: unknown scope 'admin'"):
        TokenStore.load(f, env={})
    with pytest.raises(LakeValidationError, match="shorter than 16"):
        TokenStore.load(env={"LAKE_SERVE_TOKENS": "alice:read:short"})


def _own_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))
            return s.getsockname()[0]
        except OSError:
            return None


def test_without_tokens_only_loopback_clients_are_answered(lake_settings):
    """An app with no tokens (what `lake serve` runs on 127.0.0.1) refuses a client reaching it from a
    non-loopback address, even when something binds it wider."""
    from lake_resources.serve.app import create_app

    address = _own_address()
    if address is None or address.startswith("127."):
        pytest.skip("this machine has no non-loopback address to connect from")
    server, thread, url = _start(create_app(lake_settings), host="0.0.0.0")
    try:
        port = url.rsplit(":", 1)[1]
        assert requests.get(f"{url}/datasets/ticks/partitions", timeout=30).status_code == 200
        r = requests.get(f"http://{address}:{port}/datasets/ticks/partitions", timeout=30)
        assert r.status_code == 403 and "loopback clients only" in r.json()["error"]
    finally:
        server.should_exit = True
        thread.join(10)


def test_cli_refuses_public_bind_without_tokens(tmp_path):
    env = {"LAKE_HOME": str(tmp_path / "lake"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "lake_assets.cli", "serve", "--host", "0.0.0.0"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "refusing to serve on 0.0.0.0 without tokens" in r.stderr and "Traceback" not in r.stderr


# -- bad input: 4xx with a message, never a 500 ---------------------------------------------------------
BAD = [
    ("/datasets/nope/rows", {}, 404, "unknown dataset"),
    ("/datasets/ticks/rows", {"symbols": "EUR/USD"}, 400, "invalid symbol"),
    ("/datasets/ticks/rows", {"symbols": "../../etc"}, 400, "invalid symbol"),
    ("/datasets/ticks/rows", {"symbols": "QQQZZZ"}, 400, "QQQZZZ"),
    ("/datasets/ticks/rows", {"symbols": "EURUSD", "tier": "lukewarm"}, 400, "unknown tier"),
    ("/datasets/..%2F..%2Fetc/partitions", {}, 404, "Not Found"),
    ("/datasets/..%2E/partitions", {}, 400, "invalid dataset name"),
    ("/datasets/ticks/rows", {"symbols": "EURUSD", "start": "2019-13-45"}, 400, "invalid"),
    ("/datasets/ticks/rows", {"symbols": "EURUSD", "start": "2019-02-06", "end": "2019-02-04"}, 400, "after end"),
    ("/datasets/ticks/rows", {"symbols": "EURUSD", "limit": "99999999999"}, 400, "limit"),
    ("/datasets/ticks/rows", {"symbols": "EURUSD", "limit": "ten"}, 400, "limit"),
    ("/datasets/ticks/rows", {"symbols": "EURUSD", "where": "bid > 1; DROP TABLE ticks"}, 400, "where"),
    ("/datasets/ticks/rows", {"symbols": "EURUSD", "where": "nosuch = 1"}, 400, "unknown column"),
    ("/datasets/ticks/rows", {"symbols": "EURUSD", "columns": "ts,nosuch"}, 400, "unknown column"),
    ("/datasets/ticks/rows", {"symbols": "EURUSD", "format": "xlsx"}, 400, "format"),
    ("/datasets/ticks/rows", {"symbols": "EURUSD", "as_of": "2019-02-05"}, 501, "not available"),
    ("/datasets/ticks/coverage", {}, 400, "symbol="),
    ("/datasets/leaderboard/coverage", {}, 400, "partitioned by date"),
]


@pytest.mark.parametrize("path,params,status,message", BAD, ids=[f"{i}-{b[3]}" for i, b in enumerate(BAD)])
def test_bad_input_is_a_4xx_with_a_message(served, path, params, status, message):
    r = _get(served, path, **params)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert "Traceback" not in r.text


@pytest.mark.parametrize("query", ["CREATE TABLE x AS SELECT 1", "COPY ticks TO '/tmp/x.csv'",
                                   "SELECT 1; DROP TABLE bars_1m", "ATTACH '/tmp/other.db'"])
def test_sql_that_writes_is_refused(served, query):
    r = requests.post(served["url"] + "/sql", json={"query": query},
                      headers={"Authorization": f"Bearer {SQL_TOKEN}"}, timeout=30)
    assert r.status_code == 400 and ("read-only" in r.json()["error"] or "invalid SQL" in r.json()["error"])


@pytest.mark.parametrize("query,message", [("SELECT nosuch FROM ticks", "nosuch"),
                                           ("SELECT CAST('x' AS INTEGER)", "Could not convert"),
                                           ("SELECT * FROM read_csv('/etc/passwd')", "Permission")])
def test_sql_mistakes_are_bad_input(served, query, message):
    r = requests.post(served["url"] + "/sql", json={"query": query},
                      headers={"Authorization": f"Bearer {SQL_TOKEN}"}, timeout=30)
    assert r.status_code == 400 and message in r.json()["error"] and "Traceback" not in r.text


def test_sql_time_limit(served):
    q = "SELECT count(*) FROM range(10000000000) a"
    r = requests.post(served["url"] + "/sql", json={"query": q, "timeout": 0.5},
                      headers={"Authorization": f"Bearer {SQL_TOKEN}"}, timeout=60)
    assert r.status_code == 408 and "time limit" in r.json()["error"]


# -- concurrency and resources --------------------------------------------------------------------------
def _metric(served, name: str) -> float:
    text = _get(served, "/metrics").text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def test_slow_client_does_not_block_others_and_disconnect_frees_stream(served):
    params = dict(symbols="EURUSD", start="2019-02-04", end="2019-02-06", format="csv")
    slow = requests.get(served["url"] + "/datasets/ticks/rows", params=params, stream=True, timeout=60,
                        headers={"Authorization": f"Bearer {READ_TOKEN}"})
    assert slow.status_code == 200
    pieces = slow.iter_content(1024)
    next(pieces)  # a slow client: reads one piece of a large stream, then nothing
    assert _metric(served, "lake_serve_streams_open") >= 1
    for _ in range(3):  # others are answered meanwhile
        r = _get(served, "/datasets/bars_1m/rows", symbols="EURUSD", start="2019-02-04", end="2019-02-04")
        assert r.status_code == 200 and pl.read_ipc_stream(io.BytesIO(r.content)).height == 1440
    assert _metric(served, "lake_serve_streams_open") >= 1  # the slow stream is still there, unfinished
    pieces.close()  # the client goes away mid-stream (urllib3 closes the connection)
    slow.close()
    deadline = time.monotonic() + 60
    while _metric(served, "lake_serve_streams_open") != 0:
        assert time.monotonic() < deadline, "the abandoned stream was never released"
        time.sleep(0.2)


def test_metrics_prometheus_text(served):
    _get(served, "/datasets/nope/rows")
    text = _get(served, "/metrics").text
    assert "# TYPE lake_serve_requests_total counter" in text
    assert 'lake_serve_errors_total{kind="not_found"}' in text
    assert 'lake_serve_request_seconds_bucket{endpoint="rows",le="+Inf"}' in text
    rows_line = next(l for l in text.splitlines() if l.startswith('lake_serve_rows_total{endpoint="rows"}'))
    assert float(rows_line.split()[-1]) > 0


def test_bounded_load_16_clients(served):
    """16 loopback clients reading symbol-days for a bounded number of rounds: zero errors, same rows."""
    expected = served["local"].read("bars_1m", symbols="EURUSD", start="2019-02-05", end="2019-02-05")
    remote = _remote(served)

    def one(i):
        out = []
        for _ in range(3):
            out.append(remote.read("bars_1m", symbols="EURUSD", start="2019-02-05", end="2019-02-05"))
        return out

    with ThreadPoolExecutor(16) as pool:
        results = [df for batch in pool.map(one, range(16)) for df in batch]
    assert len(results) == 48 and all(df.equals(expected) for df in results)


# -- the CLI server: token file, logs, bounded memory over a 20-day read ----------------------------------
def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_cli_server_streams_20_days_in_bounded_memory(tmp_path, day_ticks):
    """`lake serve` as a process, tokens from a token file: a 20-day tick read arrives whole and equal to
    the local read while the server's peak memory grows by a fraction of the result's size; its log
    names who read how many rows, and holds no token."""
    from datetime import date, timedelta

    from lake_resources.client import LakeClient
    from lake_resources.settings import LakeSettings
    from lake_resources.storage import Lake

    home = tmp_path / "lake"
    settings = LakeSettings(home=home, symbols=("EURUSD",))
    lake = Lake(settings)
    days = [date(2019, 3, 4) + timedelta(days=i) for i in range(20)]
    for i, d in enumerate(days):
        shift = (d - date(2019, 2, 4)).days
        ticks = day_ticks.with_columns((pl.col("ts") + pl.duration(days=shift)).cast(day_ticks.schema["ts"]))
        lake.write("ticks", (("symbol", "EURUSD"), ("date", d.isoformat())), ticks)
    token_file = tmp_path / "tokens"
    token_file.write_text(f"# who:scope:token\nresearch:read:{READ_TOKEN}\n")
    port = _free_port()
    env = {"LAKE_HOME": str(home), "LAKE_SYMBOLS": "EURUSD", "PATH": "/usr/bin:/bin"}
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "lake_assets.cli", "serve", "--port", str(port),
                                 "--token-file", str(token_file)], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "lake serve did not start"
            time.sleep(0.2)
        remote = LakeClient(url=url, token=READ_TOKEN)
        remote.read("ticks", symbols="EURUSD", start=days[0], end=days[0])  # warm-up: imports, thread pools
        before = _peak_rss_mb(proc.pid)
        got = remote.read("ticks", symbols="EURUSD", start=days[0], end=days[-1])
        grown = _peak_rss_mb(proc.pid) - before
        local = LakeClient(settings).read("ticks", symbols="EURUSD", start=days[0], end=days[-1])
        assert got.height == 20 * 136_741 and got.equals(local)
        result_mb = local.estimated_size() / 2**20
        assert grown < result_mb / 3, f"server peak memory grew {grown:.0f} MB for a {result_mb:.0f} MB result"
    finally:
        proc.terminate()
        proc.wait(30)
    text = log_path.read_text()
    assert READ_TOKEN not in text
    line = next(l for l in text.splitlines() if '"path": "/datasets/ticks/rows"' in l and f'"rows": {20 * 136_741}' in l)
    assert '"who": "research"' in line


def test_coverage_hours_follow_what_the_source_said(tmp_path, day_ticks):
    """Hours without ticks in a stored day: 'missing' where the source had no file (raw_dukascopy says so),
    'empty' where its file was empty; missing hours join the missing intervals."""
    from datetime import datetime, timezone

    from lake_resources.serve.app import create_app
    from lake_resources.settings import LakeSettings
    from lake_resources.sources.dukascopy.ingest import RAW_HOURS_SCHEMA
    from lake_resources.storage import Lake

    settings = LakeSettings(home=tmp_path / "lake", symbols=("EURUSD",))
    lake = Lake(settings)
    part = (("symbol", "EURUSD"), ("date", "2019-02-04"))
    hour = pl.col("ts").dt.hour()
    lake.write("ticks", part, day_ticks.filter(~hour.is_in([5, 6])))
    statuses = {5: "missing", 6: "empty"}
    raw = pl.DataFrame([{"ts": datetime(2019, 2, 4, h, tzinfo=timezone.utc), "symbol": "EURUSD", "hour": h,
                         "status": statuses.get(h, "present"), "bytes": 0, "sha256": "", "source": "test"}
                        for h in range(24)], schema=RAW_HOURS_SCHEMA)
    lake.write("raw_dukascopy", part, raw)
    server, thread, url = _start(create_app(settings))
    try:
        body = requests.get(f"{url}/datasets/ticks/coverage", params=dict(
            symbol="EURUSD", start="2019-02-04", end="2019-02-05", granularity="hour"), timeout=60).json()
    finally:
        server.should_exit = True
        thread.join(10)
    by_hour = {h["start"][11:13]: h["status"] for h in body["hours"][:24]}
    assert by_hour["05"] == "missing" and by_hour["06"] == "empty"
    assert all(v == "present" for k, v in by_hour.items() if k not in ("05", "06"))
    assert body["missing_intervals"] == [
        {"start": "2019-02-04T05:00:00+00:00", "end": "2019-02-04T06:00:00+00:00"},
        {"start": "2019-02-05T00:00:00+00:00", "end": "2019-02-06T00:00:00+00:00"}]


def test_damaged_partition_is_named_not_a_500(tmp_path, day_ticks):
    """A truncated hot file: a read of it alone is a 503 naming the partition; a read reaching it mid-stream
    breaks off, the remote client says so, and the server log names the partition."""
    from lake_resources.catalog.datasets import dataset_spec
    from lake_resources.client import LakeClient
    from lake_resources.serve.app import create_app
    from lake_resources.serve.remote import LakeServerError
    from lake_resources.settings import LakeSettings
    from lake_resources.storage import Lake

    settings = LakeSettings(home=tmp_path / "lake", symbols=("EURUSD",))
    lake = Lake(settings)
    for shift, day in enumerate(("2019-02-04", "2019-02-05")):
        ticks = day_ticks.with_columns((pl.col("ts") + pl.duration(days=shift)).cast(day_ticks.schema["ts"]))
        lake.write("ticks", (("symbol", "EURUSD"), ("date", day)), ticks)
    path = lake.hot.uri(dataset_spec("ticks"), (("symbol", "EURUSD"), ("date", "2019-02-05")))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    records = _Records()
    logging.getLogger("lake.serve").addHandler(records)
    server, thread, url = _start(create_app(settings))
    try:
        r = requests.get(f"{url}/datasets/ticks/rows", params=dict(symbols="EURUSD", start="2019-02-05",
                                                                   end="2019-02-05"), timeout=60)
        assert r.status_code == 503 and "ticks symbol=EURUSD, date=2019-02-05 in hot" in r.json()["error"]
        with pytest.raises(LakeServerError, match="broke off"):
            LakeClient(url=url).read("ticks", symbols="EURUSD", start="2019-02-04", end="2019-02-05")
    finally:
        server.should_exit = True
        thread.join(10)
        logging.getLogger("lake.serve").removeHandler(records)
    assert any("broke off" in line and "date=2019-02-05" in line for line in records.lines)

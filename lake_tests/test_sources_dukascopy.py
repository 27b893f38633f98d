"""DukascopySource against the real fixtures: local directory, file:// URL and a real loopback HTTP mirror."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import polars as pl
import pytest

from lake_resources.catalog.instruments import decimal_factor
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.sources.dukascopy import bi5
from lake_resources.sources.dukascopy.datafeed import DukascopySource, SourceError

DAY = date(2019, 2, 4)  # the fixture day: all 24 hours present
NO_DATA_DAY = date(2019, 2, 5)  # not in the fixtures: every hour 404s


def _hour(h: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, h, tzinfo=timezone.utc)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Mirror:
    """State of the loopback mirror: per-path request counts and injected faults."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.faults: dict[str, list[object]] = {}  # path -> actions for its next requests (500, 403, "slow", "empty")
        self.always_500: set[str] = set()
        self.delay = 0.0
        self.slow_seconds = 1.0
        self.inflight = 0
        self.max_inflight = 0
        self.auth_headers: list[str | None] = []
        self.base = ""

    def total(self) -> int:
        return sum(self.counts.values())


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        mirror: _Mirror = self.server.mirror  # type: ignore[attr-defined]
        path = unquote(urlsplit(self.path).path).lstrip("/")
        with mirror.lock:
            mirror.counts[path] += 1
            mirror.auth_headers.append(self.headers.get("Authorization"))
            queue = mirror.faults.get(path)
            action = queue.pop(0) if queue else None
            mirror.inflight += 1
            mirror.max_inflight = max(mirror.max_inflight, mirror.inflight)
        self._counted = True
        try:
            if mirror.delay:
                time.sleep(mirror.delay)
            if path in mirror.always_500 or action == 500:
                self._reply(500, b"injected failure")
            elif action == 403:
                self._reply(403, b"forbidden")
            elif action == "empty":
                self._reply(200, b"")
            else:
                if action == "slow":
                    time.sleep(mirror.slow_seconds)  # the client has timed out by now
                file = (mirror.root / path).resolve()
                if file.is_relative_to(mirror.root) and file.is_file():
                    self._reply(200, file.read_bytes())
                else:
                    self._reply(404, b"not found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
        finally:
            self._done()

    def _done(self) -> None:
        # A request stops counting as in flight once its answer is decided: the client may read the
        # reply and send its next request before this server thread has finished writing.
        if getattr(self, "_counted", False):
            self._counted = False
            mirror: _Mirror = self.server.mirror  # type: ignore[attr-defined]
            with mirror.lock:
                mirror.inflight -= 1

    def _reply(self, status: int, body: bytes) -> None:
        self._done()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the default backlog of 5 drops concurrent connects (1 s SYN retry)

    def handle_error(self, request, client_address) -> None:
        pass  # aborted connections from timed-out clients are expected


def _serve(root: Path, url_prefix: str = ""):
    mirror = _Mirror(root)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.mirror = mirror  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    mirror.base = f"http://{url_prefix}127.0.0.1:{server.server_address[1]}"
    return server, mirror


@pytest.fixture()
def mirror(datafeed_dir: Path):
    server, state = _serve(datafeed_dir)
    yield state
    server.shutdown()
    server.server_close()


def _source(base: str, **kw) -> DukascopySource:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5)
    return DukascopySource(base, **kw)


# ----------------------------------------------------------------------------------- local sources


def test_local_directory_day_decodes_to_dukascopys_own_minute_candles(datafeed_dir: Path):
    fetched = _source(str(datafeed_dir)).fetch_day("EURUSD", DAY)

    assert [f.hour for f in fetched] == bi5.day_hours(DAY)
    assert {f.status for f in fetched} == {"present"}
    for f in fetched:
        on_disk = (datafeed_dir / f.path).read_bytes()
        assert f.payload == on_disk and f.sha256 == _sha(on_disk)
        assert f.source == str((datafeed_dir / f.path).resolve())

    # Independent check of bytes and hour placement: bid minute bars built from the fetched ticks equal
    # Dukascopy's own BID minute candles for the day (on integer points).
    factor = decimal_factor("EURUSD")
    ticks = bi5.decode_day_ticks([f.payload for f in fetched], DAY, factor)
    bars = (
        ticks.with_columns((pl.col("bid") * factor).round().cast(pl.Int64).alias("points"))
        .group_by_dynamic("ts", every="1m")
        .agg(
            pl.col("points").first().alias("open"),
            pl.col("points").max().alias("high"),
            pl.col("points").min().alias("low"),
            pl.col("points").last().alias("close"),
        )
    )
    candle_file = datafeed_dir / "EURUSD/2019/01/04/BID_candles_min_1.bi5"
    candles = bi5.decode_candles(candle_file.read_bytes(), _hour(0), factor).select(
        "ts", *[(pl.col(c) * factor).round().cast(pl.Int64).alias(c) for c in ("open", "high", "low", "close")]
    )
    assert bars.height == 1440
    assert bars.equals(candles)


def test_file_url_reads_the_same_files_as_a_plain_path(datafeed_dir: Path):
    by_path = _source(str(datafeed_dir)).fetch_day("EURUSD", DAY)
    by_url = _source(datafeed_dir.resolve().as_uri()).fetch_day("eurusd", "2019-02-04")
    assert [f.sha256 for f in by_url] == [f.sha256 for f in by_path]
    assert [f.path for f in by_url] == [f.path for f in by_path]
    assert all(f.path.startswith("EURUSD/2019/01/04/") for f in by_url)  # zero-based month


def test_local_missing_file_is_missing_and_zero_bytes_is_empty(tmp_path: Path, datafeed_dir: Path, dukascopy_fixtures: Path):
    day_dir = tmp_path / "EURUSD/2019/01/04"
    day_dir.mkdir(parents=True)
    shutil.copy(datafeed_dir / "EURUSD/2019/01/04/00h_ticks.bi5", day_dir / "00h_ticks.bi5")
    shutil.copy(dukascopy_fixtures / "empty.bi5", day_dir / "01h_ticks.bi5")  # a real 0-byte hour

    fetched = _source(str(tmp_path)).fetch_day("EURUSD", DAY)

    assert [f.status for f in fetched] == ["present", "empty"] + ["missing"] * 22
    assert fetched[1].payload == b"" and fetched[1].sha256 == _sha(b"")
    assert all(f.payload == b"" and f.sha256 is None for f in fetched[2:])
    assert bi5.decode_ticks(fetched[1].payload, fetched[1].hour, 100000).height == 0


def test_bad_inputs_are_refused_with_clear_errors(tmp_path: Path, datafeed_dir: Path):
    source = _source(str(datafeed_dir))
    with pytest.raises(LakeValidationError, match="invalid symbol"):
        source.fetch_hour("../EURUSD", _hour(0))
    with pytest.raises(ValueError, match="not the start of an hour"):
        source.fetch_hour("EURUSD", _hour(0).replace(minute=30))
    with pytest.raises(ValueError, match="does not exist"):
        DukascopySource(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="unsupported datafeed base scheme 'ftp'"):
        DukascopySource("ftp://example.org/datafeed")


# ------------------------------------------------------------------------------------------- HTTP


def test_http_mirror_serves_the_day_once_per_file(mirror: _Mirror, datafeed_dir: Path):
    fetched = _source(mirror.base + "/").fetch_day("EURUSD", DAY)
    assert [f.status for f in fetched] == ["present"] * 24
    assert all(f.payload == (datafeed_dir / f.path).read_bytes() for f in fetched)
    assert fetched[5].source == f"{mirror.base}/EURUSD/2019/01/04/05h_ticks.bi5"
    assert set(mirror.counts.values()) == {1} and mirror.total() == 24


def test_http_500s_are_retried_until_the_file_arrives(mirror: _Mirror, datafeed_dir: Path):
    path = "EURUSD/2019/01/04/03h_ticks.bi5"
    mirror.faults[path] = [500, 500]
    fetched = _source(mirror.base, retries=4).fetch_hour("EURUSD", _hour(3))
    assert fetched.status == "present" and fetched.payload == (datafeed_dir / path).read_bytes()
    assert mirror.counts[path] == 3


def test_http_timeout_is_retried(mirror: _Mirror, datafeed_dir: Path):
    path = "EURUSD/2019/01/04/05h_ticks.bi5"
    mirror.faults[path] = ["slow"]
    mirror.slow_seconds = 1.0
    fetched = _source(mirror.base, timeout=0.25).fetch_hour("EURUSD", _hour(5))
    assert fetched.status == "present" and fetched.payload == (datafeed_dir / path).read_bytes()
    assert mirror.counts[path] == 2


def test_http_404_is_missing_and_never_retried(mirror: _Mirror):
    fetched = _source(mirror.base, retries=4).fetch_day("EURUSD", NO_DATA_DAY)
    assert [f.status for f in fetched] == ["missing"] * 24
    assert all(f.payload == b"" and f.sha256 is None for f in fetched)
    assert mirror.total() == 24 and set(mirror.counts.values()) == {1}


def test_http_200_with_empty_body_is_an_empty_hour(mirror: _Mirror):
    path = "EURUSD/2019/01/04/02h_ticks.bi5"
    mirror.faults[path] = ["empty"]
    fetched = _source(mirror.base).fetch_hour("EURUSD", _hour(2))
    assert (fetched.status, fetched.payload, fetched.sha256) == ("empty", b"", _sha(b""))


def test_http_persistent_500_raises_naming_the_url_after_bounded_retries(mirror: _Mirror):
    path = "EURUSD/2019/01/04/07h_ticks.bi5"
    mirror.always_500.add(path)
    with pytest.raises(SourceError) as err:
        _source(mirror.base, retries=2).fetch_day("EURUSD", DAY)
    message = str(err.value)
    assert f"{mirror.base}/{path}" in message
    assert "3 attempts" in message and "HTTP 500" in message
    assert mirror.counts[path] == 3


def test_http_client_error_is_not_retried(mirror: _Mirror):
    path = "EURUSD/2019/01/04/08h_ticks.bi5"
    mirror.faults[path] = [403]
    with pytest.raises(SourceError, match=r"08h_ticks\.bi5: HTTP 403"):
        _source(mirror.base, retries=4).fetch_hour("EURUSD", _hour(8))
    assert mirror.counts[path] == 1


def test_server_down_raises_a_clear_error_naming_the_url():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}/datafeed"
    with pytest.raises(SourceError) as err:
        _source(base, retries=1, timeout=1).fetch_hour("EURUSD", _hour(0))
    assert f"{base}/EURUSD/2019/01/04/00h_ticks.bi5" in str(err.value)
    assert "2 attempts" in str(err.value) and "ConnectionError" in str(err.value)


def test_credentials_are_sent_but_never_shown(mirror: _Mirror):
    secret = "s3cr3t-Pa55"
    base = mirror.base.replace("http://", f"http://reader:{secret}@")
    source = _source(base, retries=0)
    fetched = source.fetch_hour("EURUSD", _hour(0))
    assert mirror.auth_headers[-1] == "Basic " + base64.b64encode(f"reader:{secret}".encode()).decode()
    assert secret not in fetched.source and "reader" not in fetched.source
    assert secret not in repr(source) and secret not in source.base

    mirror.always_500.add("EURUSD/2019/01/04/01h_ticks.bi5")
    with pytest.raises(SourceError) as err:
        source.fetch_hour("EURUSD", _hour(1))
    assert secret not in str(err.value) and mirror.base in str(err.value)


def test_fetch_day_concurrency_is_bounded_and_results_stay_in_hour_order(mirror: _Mirror):
    mirror.delay = 0.25  # long enough that overlapping requests overlap even on a loaded machine
    fetched = _source(mirror.base, max_concurrency=3).fetch_day("EURUSD", DAY)
    assert [f.hour.hour for f in fetched] == list(range(24))
    assert 2 <= mirror.max_inflight <= 3


# ------------------------------------------------------------------------------------------ cache


def test_cache_fetches_each_file_once(mirror: _Mirror, tmp_path: Path):
    cache = tmp_path / "cache"
    first = _source(mirror.base, cache_dir=cache).fetch_day("EURUSD", DAY)
    assert mirror.total() == 24 and not any(f.from_cache for f in first)

    again = _source(mirror.base, cache_dir=cache).fetch_day("EURUSD", DAY)  # a new source, same cache
    assert mirror.total() == 24
    assert all(f.from_cache for f in again)
    assert [(f.status, f.sha256, f.source) for f in again] == [(f.status, f.sha256, f.source) for f in first]
    assert [f.payload for f in again] == [f.payload for f in first]


def test_cache_keeps_past_404s_and_empties_but_asks_again_for_future_hours(mirror: _Mirror, tmp_path: Path):
    cache = tmp_path / "cache"
    past_missing = _hour(0, NO_DATA_DAY)
    past_empty = _hour(4, NO_DATA_DAY)
    mirror.faults[bi5.hour_path("EURUSD", past_empty)] = ["empty"]
    future = datetime(2099, 1, 1, tzinfo=timezone.utc)
    for _ in range(2):
        source = _source(mirror.base, cache_dir=cache)
        assert source.fetch_hour("EURUSD", past_missing).status == "missing"
        assert source.fetch_hour("EURUSD", past_empty).status == "empty"
        assert source.fetch_hour("EURUSD", future).status == "missing"
    assert mirror.counts[bi5.hour_path("EURUSD", past_missing)] == 1
    assert mirror.counts[bi5.hour_path("EURUSD", past_empty)] == 1
    assert mirror.counts[bi5.hour_path("EURUSD", future)] == 2  # not settled: may still appear

    names = [p.name for p in cache.rglob("*") if p.is_file()]
    assert sorted(names) == ["00h_ticks.bi5.missing", "04h_ticks.bi5"]  # no temp files left behind


# The child: the Dukascopy resource of a lake (its download cache under LAKE_HOME/cache), fetching a
# day from the mirror one hour at a time, SIGKILLed just before the rename that publishes hour 03.
_KILLED_CACHE_WRITER = """
import sys
from lake_resources.dagster_io import DukascopyResource, LakeResource
from lake_tests.reliability.child import install_kill

install_kill("replace:03h_ticks.bi5:1:before")
source = DukascopyResource(feed="datafeed", url=sys.argv[1], lake=LakeResource(home=sys.argv[2]), max_concurrency=1).source()
source.fetch_day("EURUSD", "2019-02-04")
"""


def test_killed_cache_write_leaves_only_a_temp_file_the_sweep_removes_and_cached_hours_are_reused(
        mirror: _Mirror, tmp_path: Path, datafeed_dir: Path):
    from lake_resources.dagster_io import DukascopyResource, LakeResource
    from lake_resources.settings import LakeSettings
    from lake_resources.storage import TEMP_FILE_MIN_AGE_SECONDS, Lake
    from lake_tests.conftest import REPO_ROOT

    settings = LakeSettings(home=tmp_path / "lake")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "AWS_", "DAGSTER_"))}
    killed = subprocess.run([sys.executable, "-c", _KILLED_CACHE_WRITER, mirror.base, str(settings.home_abs)],
                            env=env | {"PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    hours = {h: bi5.hour_path("EURUSD", _hour(h)) for h in range(24)}
    files = [p for p in settings.cache_root.rglob("*") if p.is_file()]
    cached = {p.name: p.read_bytes() for p in files if not p.name.startswith(".")}
    # Hours 00-02 are cached whole; hour 03 never appears under its name, only as a hidden temp file.
    assert cached == {f"{h:02d}h_ticks.bi5": (datafeed_dir / hours[h]).read_bytes() for h in range(3)}
    [temp] = [p for p in files if p.name.startswith(".")]
    assert temp.name.startswith(".03h_ticks.bi5.tmp-") and temp.read_bytes() == (datafeed_dir / hours[3]).read_bytes()

    lake = Lake(settings)
    found = lake.find_temp_files()
    assert found.stale == [] and [(t.store, t.uri) for t in found.fresh] == [(lake.download_cache.label, str(temp))]
    assert lake.sweep_temp_files().removed == [] and temp.exists()  # fresh: may be a download in progress
    swept = lake.sweep_temp_files(now=time.time() + TEMP_FILE_MIN_AGE_SECONDS + 60)
    assert [t.uri for t in swept.removed] == [str(temp)] and not temp.exists()
    assert {p.name: p.read_bytes() for p in settings.cache_root.rglob("*") if p.is_file()} == cached

    # The next fetch reuses the three cached hours (no second request) and fetches hour 03 again.
    assert [mirror.counts[hours[h]] for h in range(5)] == [1, 1, 1, 1, 0]
    source = DukascopyResource(feed="datafeed", url=mirror.base, lake=LakeResource(home=str(settings.home_abs))).source()
    fetched = source.fetch_day("EURUSD", DAY)
    assert [f.hour.hour for f in fetched if f.from_cache] == [0, 1, 2]
    assert [mirror.counts[hours[h]] for h in range(24)] == [1, 1, 1, 2] + [1] * 20
    assert [f.payload for f in fetched] == [(datafeed_dir / hours[h]).read_bytes() for h in range(24)]
    assert lake.find_temp_files().fresh == []


def test_cache_is_separate_per_base(mirror: _Mirror, tmp_path: Path, datafeed_dir: Path):
    cache = tmp_path / "cache"
    _source(mirror.base, cache_dir=cache).fetch_hour("EURUSD", _hour(0))
    local = _source(str(datafeed_dir), cache_dir=cache).fetch_hour("EURUSD", _hour(0))
    assert not local.from_cache and local.source.startswith(str(datafeed_dir.resolve()))
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2

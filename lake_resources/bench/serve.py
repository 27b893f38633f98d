"""``lake serve`` figures: reads over the network (a real ``lake serve`` process on loopback, Arrow stream,
the remote ``LakeClient``) against ``LakeClient.read`` in-process, and throughput under concurrent clients.

The server runs as its own process (as deployed), so the client threads of this process do not share its
GIL. Every remote read is checked equal to the local one before timing. The load runs are bounded by a
duration and stop themselves; any failed request fails the run. Notes give p50/p99 latency and the server's
peak RSS.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import polars as pl

from lake_resources.bench.core import Figure, log, median_times, overhead, speedup
from lake_resources.bench.workspace import Workspace
from lake_resources.client import LakeClient

IDS = ("serve_day", "serve_hour", "serve_clients_8", "serve_load_16")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """``lake serve`` on a free loopback port over the workspace's lake, stopped on exit."""

    def __init__(self, home):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "AWS_"))}
        env["LAKE_HOME"] = str(home)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "lake_assets.cli", "serve", "--port", str(self.port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> _Server:
        import requests

        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url + "/health", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("lake serve did not start for the benchmark")
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")


def _utc(day) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def load(url: str, clients: int, seconds: float, read, min_reads: int = 2) -> dict:
    """``clients`` threads, each with its own connection, reading until ``seconds`` have passed (at least
    ``min_reads`` each). Returns reads per second and latencies; raises on any failed read."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + seconds

    def worker():
        remote = LakeClient(url=url)
        done = 0
        while done < min_reads or time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                read(remote)
            except Exception as exc:  # noqa: BLE001 - counted and reported: the run must have none
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                return
            with lock:
                latencies.append(time.perf_counter() - t0)
            done += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise AssertionError(f"{len(errors)} failed read(s) with {clients} clients: {errors[0]}")
    lat = sorted(latencies)
    return {"reads": len(lat), "elapsed": elapsed, "per_second": len(lat) / elapsed,
            "p50": lat[len(lat) // 2], "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


def run(ws: Workspace, wanted: set[str]) -> list[Figure]:
    if not wanted & set(IDS):
        return []
    cfg = ws.config
    local = LakeClient(lake=ws.lake)
    symbol, day = ws.symbol, ws.trading_days[0]
    figures: list[Figure] = []
    with _Server(ws.lake_home) as server:
        remote = LakeClient(url=server.url)

        def compare(t0, t1, what):
            def ours() -> pl.DataFrame:
                return remote.read("ticks", symbols=symbol, start=t0, end=t1)

            def base() -> pl.DataFrame:
                return local.read("ticks", symbols=symbol, start=t0, end=t1)

            if not ours().equals(base()):
                raise AssertionError(f"the remote read and LakeClient.read disagree on [{t0}, {t1})")
            log(f"lake serve, {what}: {cfg.fast_repeats} rounds")
            return median_times({"ours": ours, "base": base}, cfg.fast_repeats, warmup=cfg.warmup,
                                budget=cfg.budget_seconds)

        if "serve_day" in wanted:
            t = compare(_utc(day), _utc(day) + timedelta(days=1), "1 symbol-day")
            figures.append(overhead("serve_day", f"`lake serve` Arrow read, 1 symbol-day ({ws.ticks(day).height:,} ticks)",
                                    "`LakeClient.read` in-process", t["ours"], t["base"], target=1.5))
        if "serve_hour" in wanted:
            t0 = _utc(day) + timedelta(hours=13)
            t = compare(t0, t0 + timedelta(hours=1), "1-hour window")
            figures.append(overhead("serve_hour", "`lake serve` Arrow read, 1-hour window",
                                    "`LakeClient.read` in-process", t["ours"], t["base"], target=2.0))
        loads = [(fid, n) for fid, n in (("serve_clients_8", 8), ("serve_load_16", 16)) if fid in wanted]
        if loads:
            seconds = {"full": 20.0, "quick": 3.0}.get(cfg.mode, 0.0)

            def read_day(client) -> None:
                client.read("ticks", symbols=symbol, start=day, end=day)

            log(f"lake serve load: 1 client for {seconds:g} s")
            one = load(server.url, 1, seconds, read_day)
            for fid, n in loads:
                log(f"lake serve load: {n} clients for {seconds:g} s")
                many = load(server.url, n, seconds, read_day)
                note = (f"{many['reads']} reads in {many['elapsed']:.1f} s, 0 errors; latency p50 {many['p50'] * 1e3:.0f} ms, "
                        f"p99 {many['p99'] * 1e3:.0f} ms (1 client: p50 {one['p50'] * 1e3:.0f} ms); "
                        f"server peak RSS {server.peak_rss_mib():.0f} MiB")
                figures.append(speedup(fid, f"`lake serve` throughput, {n} concurrent clients reading symbol-days",
                                       "1 client", 1.0, 1 / many["per_second"], 1 / one["per_second"],
                                       unit="reads/s", scale=1.0, target=1.5, note=note))
    return figures

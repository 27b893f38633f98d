"""Orchestration figures: a Dagster single-run backfill against the same functions in a loop, and the
peak memory of processing one day-partition against the partition's in-memory size."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date

from lake_resources.bench.core import Figure, Scaling, log, overhead
from lake_resources.bench.pipeline import BackfillRunner, loop_backfill, stored_digests
from lake_resources.bench.workspace import Workspace

IDS = ("dagster_backfill", "peak_memory")


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _compare_backfills(ws: Workspace, dagster_backfill: BackfillRunner, days: list[date], rounds: int, warmup: bool,
                       label: str) -> dict[str, float]:
    """Median seconds of each way over ``rounds`` interleaved rounds, each into a fresh lake."""
    feed = ws.feed_dir
    times: dict[str, list[float]] = {"dagster": [], "loop": []}
    ways = {"dagster": dagster_backfill, "loop": loop_backfill}
    for round_ in range(-1 if warmup else 0, rounds):
        order = ["dagster", "loop"] if round_ % 2 == 0 else ["loop", "dagster"]
        homes = {way: ws.root / f"backfill-{label}-{way}-{round_ + 1}" for way in order}
        for way in order:
            # The warm-up round runs one day only: it pays Dagster's first-run set-up, not a full backfill.
            elapsed = _timed(ways[way], homes[way], feed, ws.symbol, days[:1] if round_ < 0 else days)
            if round_ >= 0:
                times[way].append(elapsed)
        if round_ == 0:
            ours, loop = (stored_digests(homes[way], ws.symbol, days) for way in ("dagster", "loop"))
            if ours != loop:
                differ = sorted(k for k in ours if ours[k] != loop.get(k))
                raise AssertionError(f"the Dagster backfill and the loop stored different partitions: {differ[:5]}")
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)
    return {way: statistics.median(values) for way, values in times.items()}


def run(ws: Workspace, wanted: set[str], dagster_backfill: BackfillRunner | None = None) -> list[Figure]:
    cfg = ws.config
    figures: list[Figure] = []
    if "dagster_backfill" in wanted:
        n = ws.tick_count(ws.days)
        log(f"Dagster backfill vs loop: {len(ws.days)} partitions, {n:,} ticks, {cfg.slow_repeats} rounds")
        t = _compare_backfills(ws, dagster_backfill, ws.days, cfg.slow_repeats, cfg.warmup, "all")
        fig = overhead(
            "dagster_backfill",
            f"Dagster backfill, {cfg.days} trading days × 1 symbol ({len(ws.days)} day-partitions, {n:,} ticks), "
            "raw → ticks → bars_1m",
            "the same functions called in a loop", t["dagster"], t["loop"], target=2.0, unit="s", scale=1.0,
        )
        if cfg.scaling:
            log(f"Dagster backfill scaling: 1 day, {cfg.slow_repeats} round(s)")
            one_day = []
            for round_ in range(max(1, cfg.slow_repeats)):
                home = ws.root / f"backfill-one-{round_}"
                one_day.append(_timed(dagster_backfill, home, ws.feed_dir, ws.symbol, ws.days[:1]))
                shutil.rmtree(home, ignore_errors=True)
            n1 = ws.ticks(ws.days[0]).height
            fig.scaling = Scaling("ns/tick", statistics.median(one_day) / n1 * 1e9, t["dagster"] / n * 1e9, cfg.days, n1, n)
        figures.append(fig)
    if "peak_memory" in wanted:
        figures.append(_peak_memory(ws))
    return figures


def measure_peak(ws: Workspace, days: list[date], label: str) -> list[dict]:
    """Run the peak-memory subprocess over ``days``; returns its per-day measurements (cumulative)."""
    lake = ws.root / f"peakmem-{label}"
    cmd = [sys.executable, "-m", "lake_resources.bench.peakmem", "--feed", str(ws.feed_dir), "--lake", str(lake),
           "--symbol", ws.symbol, "--days", ",".join(d.isoformat() for d in days)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"peak-memory subprocess failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["after_day"]


def _peak_memory(ws: Workspace) -> Figure:
    """Peak RSS above the start, in fresh processes, / the day's ticks frame in memory.

    With scaling, the first process streams every day: its state after the first day is one
    sample of the one-day figure, and after the last day the N-day figure.
    """
    cfg = ws.config
    rounds = max(1, cfg.slow_repeats)
    log(f"peak memory of one day-partition: {rounds} subprocess(es)" + (", the first over every day" if cfg.scaling else ""))
    every = measure_peak(ws, ws.days, "all") if cfg.scaling else None
    firsts = ([every[0]] if every else []) + [measure_peak(ws, ws.days[:1], "one")[0] for _ in range(rounds - bool(every))]
    delta = statistics.median(r["delta"] for r in firsts)
    size = firsts[0]["largest_partition_bytes"]
    mib = 1 / 2**20
    fig = Figure(
        "peak_memory", f"peak memory processing one day-partition ({firsts[0]['ticks']:,} ticks: fetch → bars, stored)",
        "the partition's ticks in memory (`estimated_size`)", delta * mib, size * mib, "MiB", delta / size, "<=", 3.0,
        note="RSS high-water mark above the RSS before, fresh process",
    )
    if every:
        last = every[-1]
        fig.scaling = Scaling("× largest partition", delta / size, last["delta"] / last["largest_partition_bytes"],
                              cfg.days, firsts[0]["ticks"], last["ticks"])
    return fig

"""Peak memory of processing day-partitions, measured in a fresh process by its resident set size.

Run as ``python -m lake_resources.bench.peakmem --feed DIR --lake DIR --symbol EURUSD --days D1,D2,...``:
imports everything and processes one tiny warm-up day first (library start-up is not the
partition's cost), notes the RSS, then runs :func:`lake_resources.bench.pipeline.ingest_day` over
the days in order, as a backfill streams them, and prints one JSON object: the RSS before and,
after each day, the peak RSS so far above it (the kernel's high-water mark ``VmHWM``, reset after
the warm-up), the in-memory size of the largest ticks partition so far (``DataFrame.estimated_size()``)
and the ticks so far. Python-level tracers (tracemalloc) miss numpy/polars/Arrow
buffers allocated natively; RSS counts them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
from datetime import date
from pathlib import Path


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0), so the warm-up's peak does not count."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    hwm = _status_kib("VmHWM")  # honours reset_peak_rss(); getrusage's ru_maxrss does not
    if hwm is not None:
        return hwm * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_resources.bench.peakmem")
    parser.add_argument("--feed", required=True)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--symbol", required=True)
    parser.add_argument("--days", required=True, help="comma-separated YYYY-MM-DD")
    args = parser.parse_args(argv)

    from lake_resources.bench.pipeline import ingest_day, lake_at
    from lake_resources.generate import generate
    from lake_resources.sources.dukascopy.datafeed import DukascopySource

    days = [date.fromisoformat(d) for d in args.days.split(",")]
    with tempfile.TemporaryDirectory(prefix="lake-bench-warmup-") as tmp:
        warm = generate(Path(tmp) / "feed", [args.symbol], days[0], days[0], ticks_per_day=2_000, lzma_preset=0,
                        layouts=("datafeed",))
        with DukascopySource(str(warm.dukascopy_dir)) as source:
            ingest_day(lake_at(Path(tmp) / "lake"), source, args.symbol, days[0])
    gc.collect()
    reset = reset_peak_rss()
    before = current_rss()

    lake = lake_at(Path(args.lake))
    # After each day: the peak so far above the RSS before, the largest partition so far, ticks so far.
    after_day: list[dict] = []
    largest = ticks = 0
    with DukascopySource(args.feed) as source:
        for day in days:
            good, _ = ingest_day(lake, source, args.symbol, day)
            peak = peak_rss()  # before sizing: estimated_size() materialises polars' constant `symbol` column
            largest = max(largest, good.estimated_size())
            ticks += good.height
            del good, _
            after_day.append({"delta": peak - before, "largest_partition_bytes": largest, "ticks": ticks})
    json.dump({"rss_before": before, "peak_reset": reset, "after_day": after_day}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

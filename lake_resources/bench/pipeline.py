"""The daily ingest graph as plain calls: the baseline of the Dagster backfill figure (the Dagster side,
which needs the Dagster layer, is ``lake_assets.bench_dagster.dagster_backfill``, handed in by ``lake bench``).

``ingest_day`` does for one symbol-day what the assets ``raw_dukascopy`` -> ``ticks`` -> ``bars_1m``
do, by calling the same library functions the assets call (:mod:`lake_resources.sources.dukascopy.ingest`,
:func:`~lake_resources.transforms.bars.minute_bars`) and storing the same outputs (raw zone files, the
per-hour status table, quarantine, ticks, minute bars), so timing the two measures what
orchestration costs and nothing else. The benchmark checks they store byte-identical partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

import polars as pl

from lake_resources.settings import LakeSettings
from lake_resources.sources.dukascopy import ingest
from lake_resources.sources.dukascopy.datafeed import DukascopySource
from lake_resources.sources.dukascopy.ingest import day_partition
from lake_resources.storage import Lake
from lake_resources.transforms.bars import minute_bars

#: ``(lake_home, feed_dir, symbol, days) -> None``: a backfill of raw_dukascopy -> ticks -> bars_1m into a fresh lake.
BackfillRunner = Callable[[Path, Path, str, list[date]], None]


def lake_at(home: Path) -> Lake:
    return Lake(LakeSettings(home=home))


def ingest_day(lake: Lake, source: DukascopySource, symbol: str, day: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fetch, keep raw, decode, normalise, quarantine, store ticks and minute bars; returns (ticks, bars)."""
    partition = day_partition(symbol, day)
    hours = ingest.fetch_raw_day(lake, source, symbol, day)
    lake.write("raw_dukascopy", partition, hours)
    good, _ = ingest.ticks_from_raw(lake, symbol, day, hours)  # stores the day's quarantine
    lake.write("ticks", partition, good)
    bars = minute_bars(good)
    lake.write("bars_1m", partition, bars)
    return good, bars


def loop_backfill(lake_home: Path, feed_dir: Path, symbol: str, days: Iterable[date]) -> int:
    """The baseline: ``ingest_day`` over the days, in a plain loop. Returns the ticks stored."""
    lake = lake_at(lake_home)
    ticks = 0
    with DukascopySource(str(feed_dir)) as source:
        for day in days:
            good, _ = ingest_day(lake, source, symbol, day)
            ticks += good.height
    return ticks


def stored_digests(lake_home: Path, symbol: str, days: Iterable[date]) -> dict[tuple[str, str], tuple[int, str]]:
    """(dataset, day) -> (rows, sha256) of the partitions a backfill stores, for the equality check."""
    lake = lake_at(lake_home)
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for day in days:
        for dataset, partition in (
            ("raw_dukascopy", day_partition(symbol, day)),
            ("ticks", day_partition(symbol, day)),
            ("bars_1m", day_partition(symbol, day)),
            ("quarantine", (("stage", "ticks"), *day_partition(symbol, day))),
        ):
            tier = lake.find(dataset, partition)
            manifest = lake.manifest(dataset, partition, tier) if tier is not None else None
            out[(dataset, day.isoformat())] = (manifest["rows"], manifest["sha256"]) if manifest else (-1, "absent")
    return out

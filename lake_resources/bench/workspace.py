"""The benchmark's data, generated on demand in a temporary directory and shared by the figure groups.

- ``codec_payloads(symbol)``: the first day of hourly BI5 payloads of a symbol, compressed as Dukascopy's
  files are (``bi5.encode_ticks``' LZMA settings), in memory: what the decode and size figures read.
- ``feed_dir``: the calendar days spanning ``config.days`` trading days of BI5 files in the datafeed layout (LZMA preset 0, which
  decodes identically and generates ~10x faster), the source of the backfills.
- ``lake_home``: a lake holding those days as ticks (hot Parquet) and minute bars (warm DuckDB),
  built by :func:`lake_resources.bench.pipeline.loop_backfill`; ``ticks(day)`` are its tick frames.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from functools import cached_property
from pathlib import Path

import polars as pl

from lake_resources.bench.core import BenchConfig, log
from lake_resources.bench.pipeline import ingest_day, lake_at
from lake_resources.catalog.datasets import dataset_spec
from lake_resources.catalog.instruments import decimal_factor
from lake_resources.generate import generate, generate_day_payloads
from lake_resources.sources.dukascopy.datafeed import DukascopySource
from lake_resources.sources.dukascopy.ingest import day_partition
from lake_resources.storage import Lake


class Workspace:
    def __init__(self, config: BenchConfig, root: Path | None = None):
        self.config = config
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="lake-bench-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.symbol = config.symbol
        self.days = config.day_list  # calendar days: weekends are partitions too (closed: no or few ticks)
        self.trading_days = config.trading_days
        self.factor = decimal_factor(config.symbol)
        self._ticks: dict[date, pl.DataFrame] = {}
        self._payloads: dict[str, list[bytes]] = {}

    def close(self) -> None:
        self._ticks.clear()
        self._payloads.clear()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # --- the decode figures' day -------------------------------------------------------------
    def codec_payloads(self, symbol: str) -> list[bytes]:
        if symbol not in self._payloads:
            log(f"generating {symbol} {self.days[0]} (~{self.config.ticks_per_day:,} ticks, Dukascopy's LZMA settings)")
            self._payloads[symbol] = generate_day_payloads(symbol, self.days[0], self.config.ticks_per_day, self.config.seed)
        return self._payloads[symbol]

    # --- the datafeed and the lake -------------------------------------------------------------
    @cached_property
    def feed_dir(self) -> Path:
        log(f"generating the datafeed: {self.symbol} {self.days[0]}..{self.days[-1]} (~{self.config.ticks_per_day:,} ticks/day)")
        summary = generate(
            self.root / "feed", [self.symbol], self.days[0], self.days[-1], self.config.seed,
            ticks_per_day=self.config.ticks_per_day, lzma_preset=0, layouts=("datafeed",),
        )
        return summary.dukascopy_dir

    @cached_property
    def lake_home(self) -> Path:
        home = self.root / "lake"
        log(f"building the lake at {home}: ticks (hot) and minute bars (warm) for {len(self.days)} day(s)")
        lake = lake_at(home)
        with DukascopySource(str(self.feed_dir)) as source:
            for day in self.days:
                self._ticks[day], _ = ingest_day(lake, source, self.symbol, day)
        return home

    @cached_property
    def lake(self) -> Lake:
        return lake_at(self.lake_home)

    def ticks(self, day: date) -> pl.DataFrame:
        _ = self.lake_home
        return self._ticks[day]

    def tick_files(self, days: list[date]) -> list[str]:
        spec = dataset_spec("ticks")
        return [self.lake.hot.uri(spec, day_partition(self.symbol, d)) for d in days]

    def tick_count(self, days: list[date]) -> int:
        return sum(self.ticks(d).height for d in days)


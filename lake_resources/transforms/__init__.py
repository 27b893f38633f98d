"""Canonical transformations over polars frames: tick normalisation and quarantine, bars and roll-ups.

Plain typed functions, no Dagster: the assets call them, the tests hold them to Dukascopy's own candles.
"""

from lake_resources.transforms.bars import (
    BAR_COLUMNS,
    BAR_SCHEMA,
    ROLLUP_INTERVALS,
    empty_bars,
    minute_bars,
    minute_bars_from_parquet,
    rollup,
    uniform_bars,
)
from lake_resources.transforms.ticks import (
    QUARANTINE_SCHEMA,
    TICK_COLUMNS,
    TICK_SCHEMA,
    FrameContractError,
    normalize_ticks,
    split_bad_ticks,
    split_hour_records,
)

__all__ = [
    "BAR_COLUMNS",
    "BAR_SCHEMA",
    "QUARANTINE_SCHEMA",
    "ROLLUP_INTERVALS",
    "TICK_COLUMNS",
    "TICK_SCHEMA",
    "FrameContractError",
    "empty_bars",
    "minute_bars",
    "minute_bars_from_parquet",
    "normalize_ticks",
    "rollup",
    "split_bad_ticks",
    "split_hour_records",
    "uniform_bars",
]

"""The lake's datasets: their home tier and how they are partitioned. One registry, read by the IO
manager, the ``LakeClient``, ``lake sql`` and the lifecycle policies.

A partition is an ordered tuple of ``(field, value)`` pairs; its storage path is the Hive layout
``{dataset}/{field}={value}/...``. The ``date`` field is the UTC day of the dataset's time column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import Enum

from lake_resources.catalog.validation import (
    LakeValidationError,
    parse_date,
    validate_dataset,
    validate_partition_value,
    validate_symbol,
)


class Tier(str, Enum):
    HOT = "hot"  # Parquet on local SSD
    WARM = "warm"  # DuckDB tables
    COLD = "cold"  # Parquet on S3/MinIO (or a local directory with the same layout)

    @classmethod
    def parse(cls, value: str | Tier) -> Tier:
        try:
            return cls(value)
        except ValueError:
            raise LakeValidationError(f"unknown tier {value!r}: use hot, warm or cold") from None


#: Reads prefer the fastest tier that holds a partition (a partition is in two tiers only mid-move).
TIER_PREFERENCE = (Tier.HOT, Tier.WARM, Tier.COLD)

Partition = tuple[tuple[str, str], ...]

DATE_SYMBOL = ("symbol", "date")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    tier: Tier
    partition_by: tuple[str, ...] = DATE_SYMBOL
    time_column: str | None = "ts"
    description: str = ""

    def partition(self, **values: str | date) -> Partition:
        """Build a validated partition from field values, in the dataset's field order."""
        if set(values) != set(self.partition_by):
            raise LakeValidationError(
                f"dataset {self.name!r} is partitioned by {self.partition_by}, got {tuple(values)}"
            )
        return tuple((f, normalize_partition_value(f, values[f])) for f in self.partition_by)


def normalize_partition_value(field: str, value: str | date) -> str:
    if field == "date":
        return parse_date(value).isoformat()
    if field == "symbol":
        return validate_symbol(str(value))
    return validate_partition_value(str(value))


def partition_path(partition: Partition) -> str:
    """``symbol=EURUSD/date=2019-02-04`` (empty for an unpartitioned dataset)."""
    return "/".join(f"{f}={v}" for f, v in partition)


def parse_partition_path(spec: DatasetSpec, path: str) -> Partition:
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) != len(spec.partition_by):
        raise LakeValidationError(f"{path!r} is not a partition of {spec.name}")
    values = {}
    for part, expected in zip(parts, spec.partition_by):
        field, _, value = part.partition("=")
        if field != expected:
            raise LakeValidationError(f"{path!r} is not a partition of {spec.name}")
        values[field] = value
    return spec.partition(**values)


def partition_label(partition: Partition) -> str:
    return ", ".join(f"{f}={v}" for f, v in partition) or "(unpartitioned)"


_SPECS = [
    DatasetSpec("raw_dukascopy", Tier.HOT, description="Per hour of a symbol-day: present, empty or missing, with the raw file's size and SHA-256 (bytes kept in the raw zone) and the feed it came from (api or datafeed)."),
    DatasetSpec("raw_vendor", Tier.HOT, description="Every vendor JSON pull of a symbol-day, as an index of zstd-compressed payloads kept in the raw zone."),
    DatasetSpec("ticks", Tier.HOT, description="Normalized ticks: UTC ns timestamps, bid/ask, volumes, mid and spread, in time order."),
    DatasetSpec("vendor_candles_1m", Tier.WARM, description="Dukascopy's own BID and ASK minute candles of a symbol-day (the vendor's reference for bars_1m), with the price step."),
    DatasetSpec("vendor_candles_1h", Tier.WARM, description="Dukascopy's own BID and ASK hourly candles of a symbol-day (from the month's candles), with the price step."),
    DatasetSpec("vendor_candles_1d", Tier.WARM, description="Dukascopy's own BID and ASK daily candle of a symbol-day (from the year's candles), with the price step."),
    DatasetSpec("quarantine", Tier.WARM, partition_by=("stage", "symbol", "date"), description="Records and files refused during ingestion, with the reason and where they came from."),
    DatasetSpec("bars_1m", Tier.WARM, description="Minute bars on mid with bid/ask OHLC, volumes, tick counts and mean spread; vendor minute bars in the same uniform view."),
    DatasetSpec("bars_5m", Tier.WARM, description="5-minute roll-up of bars_1m."),
    DatasetSpec("bars_1h", Tier.WARM, description="Hourly roll-up of bars_1m."),
    DatasetSpec("bars_1d", Tier.WARM, description="Daily roll-up of bars_1m (UTC days)."),
    DatasetSpec("option_greeks", Tier.WARM, description="Option greeks from vendor pulls."),
    DatasetSpec("headlines", Tier.WARM, description="News headlines from vendor pulls."),
    DatasetSpec("features", Tier.WARM, description="Point-in-time correct, versioned features computed from minute bars."),
    DatasetSpec("heuristic_defs", Tier.WARM, partition_by=(), time_column=None, description="Every version of every strategy/heuristic spec ever seen, with when it was added."),
    DatasetSpec("signal_matches", Tier.WARM, partition_by=("run",), description="Signals of each heuristic run: spec id, ts, symbol, score."),
    DatasetSpec("backtest_trades", Tier.WARM, partition_by=("run",), time_column="entry_ts", description="Per-trade records of each backtest run."),
    DatasetSpec("backtest_equity", Tier.WARM, partition_by=("run",), description="Equity curve of each backtest run."),
    DatasetSpec("backtest_runs", Tier.WARM, partition_by=("run",), time_column=None, description="Summary metrics and lineage of each backtest run."),
    DatasetSpec("leaderboard", Tier.WARM, partition_by=(), time_column=None, description="All backtest runs ranked by a metric (Sharpe by default)."),
]

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}


def dataset_spec(name: str) -> DatasetSpec:
    validate_dataset(name)
    try:
        return DATASETS[name]
    except KeyError:
        raise LakeValidationError(
            f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}"
        ) from None

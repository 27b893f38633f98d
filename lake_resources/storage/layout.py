"""What every tier shares: the layout's file names, the storage errors, ``PartitionInfo`` (a stored
partition's record), ``MonthFile`` (a compacted cold month) and the date/month helpers of the layout."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone

import polars as pl

from lake_resources.catalog.datasets import DATE_SYMBOL, DatasetSpec, Partition, partition_label, partition_path
from lake_resources.catalog.validation import LakeValidationError, validate_symbol

DATA_FILE = "part-0.parquet"
MANIFEST_FILE = "_manifest.json"
MANIFEST_TABLE = "_lake_partitions"
MONTH_FIELD = "month"


class LakeStorageError(RuntimeError):
    """A storage operation failed; the message says which tier, dataset and partition."""


class ColdTierUnreachable(LakeStorageError):
    """The S3 cold tier is down and a read needs partitions only it holds (``ColdOutage.error``)."""


class ColdTierUnreachableWarning(UserWarning):
    """A read answered from hot and warm while the S3 cold tier was down (``ColdOutage.warning``)."""


class PartitionNotFound(LakeStorageError):
    pass


@dataclass(frozen=True)
class PartitionInfo:
    dataset: str
    tier: str
    partition: Partition
    rows: int
    sha256: str
    bytes: int
    uri: str
    written_at: str
    min_ts: str | None = None
    max_ts: str | None = None

    @property
    def path(self) -> str:
        return partition_path(self.partition)

    def field(self, name: str) -> str | None:
        return dict(self.partition).get(name)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["partition"] = self.path
        return d


def is_compactable(spec: DatasetSpec) -> bool:
    """Datasets partitioned by symbol x date with a time column can have cold month files."""
    return spec.partition_by == DATE_SYMBOL and spec.time_column is not None


@dataclass(frozen=True, eq=False)
class MonthFile:
    """A compacted cold file of one symbol-month; ``manifest["dates"]`` maps each date it serves to that
    day's rows, SHA-256 (of the day's canonical encoding), time range and schema."""

    dataset: str
    symbol: str
    month: str
    uri: str
    manifest: dict

    @property
    def dates(self) -> dict[str, dict]:
        return self.manifest.get("dates", {})

    @property
    def bytes(self) -> int:
        return int(self.manifest.get("bytes", 0))



def _ts_range(spec: DatasetSpec, df: pl.DataFrame) -> tuple[str | None, str | None]:
    col = spec.time_column
    if not col or col not in df.columns or df.height == 0:
        return None, None
    lo, hi = df[col].min(), df[col].max()
    return (lo.isoformat() if lo is not None else None, hi.isoformat() if hi is not None else None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def day_bounds(day: str | date) -> tuple[datetime, datetime]:
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def _check_month(month: str) -> str:
    try:
        parsed = datetime.strptime(month, "%Y-%m")
    except (TypeError, ValueError):
        raise LakeValidationError(f"invalid month {month!r}: use YYYY-MM") from None
    return parsed.strftime("%Y-%m")


def _parse_month_path(rel: str) -> tuple[str, str] | None:
    """``symbol=EURUSD/month=2019-02`` -> ("EURUSD", "2019-02"); None for anything else."""
    parts = rel.strip("/").split("/")
    if len(parts) != 2 or not parts[0].startswith("symbol=") or not parts[1].startswith(f"{MONTH_FIELD}="):
        return None
    try:
        return validate_symbol(parts[0][len("symbol="):]), _check_month(parts[1][len(MONTH_FIELD) + 1:])
    except ValueError:
        return None


@dataclass(frozen=True)
class Damage:
    dataset: str
    partition: Partition
    tier: str
    uri: str
    detail: str

    @property
    def key(self) -> tuple[str, Partition, str]:
        return self.dataset, self.partition, self.tier

    def describe(self) -> str:
        return f"{self.dataset} {partition_label(self.partition)} in {self.tier} ({self.uri}): {self.detail}"

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "partition": partition_label(self.partition), "tier": self.tier,
                "uri": self.uri, "detail": self.detail, **dict(self.partition)}


class PartitionDamaged(LakeStorageError):
    """A read met damaged partitions; the message names each one (dataset, partition, tier, path)."""

    def __init__(self, damaged: list[Damage], cause: str = ""):
        self.damaged = damaged
        names = "; ".join(d.describe() for d in damaged[:10]) + (f"; and {len(damaged) - 10} more" if len(damaged) > 10 else "")
        super().__init__(
            f"{len(damaged)} damaged partition(s): {names}. Re-materialize them to repair; "
            "`lake storage --verify` checks every partition"
            + (f" (the read failed with: {cause.splitlines()[0][:200]})" if cause else ""))


class DamagedPartitionWarning(UserWarning):
    """A read asked to skip damaged partitions left these out."""


def warn_skipped(damaged: list[Damage], needed: bool = True) -> None:
    """One warning per damaged partition: left out of a read (``needed``), or not needed by the query."""
    what = "skipped damaged partition" if needed else "damaged partition (this query did not need its rows)"
    for d in damaged:
        warnings.warn(f"{what} {d.describe()}", DamagedPartitionWarning, stacklevel=3)

"""Which stored partitions a research output read, and their SHA-256 (the lake's data versions).

Every partition's checksum is in its tier's manifest (the SHA-256 of its canonical Parquet encoding,
the same in every tier), so lineage costs no data reads: one manifest query for the warm tier, one
manifest file per hot/cold partition.
"""


import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from lake_resources.catalog.datasets import DatasetSpec, Partition, Tier, partition_path
from lake_resources.storage import Lake, LakeStorageError, Located


@dataclass(frozen=True)
class StoredPartition:
    """A partition as located for a read: where it is, its row count and checksum."""

    dataset: str
    partition: Partition
    tier: Tier
    rows: int
    sha256: str

    @property
    def label(self) -> str:
        """``bars_1m/symbol=EURUSD/date=2019-02-04``: the key of lineage records."""
        return f"{self.dataset}/{partition_path(self.partition)}"

    @property
    def day(self) -> date:
        return date.fromisoformat(dict(self.partition)["date"])


def stored_partitions(lake: Lake, spec: DatasetSpec, located: Iterable[Located]) -> list[StoredPartition]:
    """Manifest facts of each located partition, from the tier it was located in."""
    located = list(located)
    warm = lake.warm.manifests(spec) if any(l.tier is Tier.WARM for l in located) else {}
    out = []
    for loc in located:
        manifest = warm.get(loc.partition) if loc.tier is Tier.WARM else lake.manifest(spec, loc.partition, loc.tier)
        if manifest is None:  # located a moment ago: it was moved or deleted in between
            raise LakeStorageError(
                f"{spec.name} {partition_path(loc.partition)} has no manifest in the {loc.tier.value} tier "
                "(moved or deleted during the read): run again"
            )
        out.append(StoredPartition(spec.name, loc.partition, loc.tier, int(manifest["rows"]), manifest["sha256"]))
    return out


def day_index(lake: Lake, spec: DatasetSpec, symbol: str, start: date, end: date) -> dict[date, StoredPartition]:
    """The stored days of one symbol in ``[start, end]``, by date."""
    located = lake.locate(spec, [symbol], start, end)
    return {p.day: p for p in stored_partitions(lake, spec, located)}


def history_days(index: Mapping[date, StoredPartition], day: date, rows_needed: int, search_days: int) -> list[StoredPartition]:
    """The days before ``day`` whose bars make a history tail of ``rows_needed`` rows, newest first.

    Walks back over at most ``search_days`` calendar days, skipping days without rows (weekends,
    holidays, empty partitions), and stops once the days taken hold ``rows_needed`` rows. Fewer rows
    within the search window is not an error: features then warm up inside the day (nulls first).
    """
    taken: list[StoredPartition] = []
    rows = 0
    for back in range(1, search_days + 1):
        stored = index.get(day - timedelta(days=back))
        if stored is None or stored.rows == 0:
            continue
        taken.append(stored)
        rows += stored.rows
        if rows >= rows_needed:
            break
    return taken


def versions_json(partitions: Iterable[StoredPartition]) -> str:
    """``{"bars_1m/symbol=EURUSD/date=2019-02-04": "<sha256>", ...}`` as canonical JSON."""
    return json.dumps({p.label: p.sha256 for p in partitions}, sort_keys=True, separators=(",", ":"))


def lineage_digest(code_version: str, inputs_json: str) -> str:
    """A content-derived data version: equal exactly when the code version and every input are equal."""
    return hashlib.sha256(f"{code_version}\n{inputs_json}".encode()).hexdigest()[:24]

"""What is stored where: every tier's copy of a partition (``Copy``) and the one a move takes as source."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from lake_resources.catalog.datasets import TIER_PREFERENCE, DatasetSpec, Partition, Tier
from lake_resources.storage import (
    Lake,
)


# ============================================================================================
# What is stored where
# ============================================================================================
@dataclass(frozen=True)
class Copy:
    """One tier's copy of a partition. ``sha256`` is empty when the data has no manifest (a write
    interrupted between data and manifest): such a copy is never the source of a move."""

    tier: Tier
    rows: int
    sha256: str
    bytes: int
    month: str | None = None  # served by a cold month file

    @property
    def complete(self) -> bool:
        return bool(self.sha256)


def _date_of(partition: Partition) -> date | None:
    value = dict(partition).get("date")
    return date.fromisoformat(value) if value else None


def inventory(lake: Lake, spec: DatasetSpec, tiers: Iterable[Tier] = TIER_PREFERENCE) -> dict[Partition, list[Copy]]:
    """Every copy of every partition of a dataset, fastest tier first (one listing per tier)."""
    out: dict[Partition, list[Copy]] = {}
    for tier in TIER_PREFERENCE:
        if tier not in tiers:
            continue
        if tier is Tier.WARM:
            for p, m in lake.warm.manifests(spec).items():
                out.setdefault(p, []).append(Copy(tier, m["rows"], m["sha256"], m["bytes"]))
            continue
        store = lake.tier(tier)
        if tier is Tier.COLD:
            daily, months = store.catalogue(spec)
            if store.record is not None:
                store.record.listed(spec, None, daily, months)
        else:
            daily, months = store.list(spec), []
        manifests = store.manifests(spec, daily)
        for p in daily:
            m = manifests.get(p)
            out.setdefault(p, []).append(Copy(tier, m["rows"], m["sha256"], m["bytes"]) if m else Copy(tier, -1, "", 0))
        for mf in months:
            for day, entry in mf.dates.items():
                p = spec.partition(symbol=mf.symbol, date=day)
                copies = out.setdefault(p, [])
                if not any(c.tier is Tier.COLD for c in copies):  # a daily cold file shadows the month's day
                    copies.append(Copy(tier, entry["rows"], entry["sha256"], entry.get("bytes", 0), mf.month))
    return out


def copies_of(lake: Lake, spec: DatasetSpec, partition: Partition) -> list[Copy]:
    """The copies of one partition, read fresh from storage, fastest tier first. A Parquet copy
    exists when its data file does (a manifest left without data is not a copy)."""
    found = []
    for tier in TIER_PREFERENCE:
        if tier is Tier.WARM:
            m = lake.warm.manifest(spec, partition) if lake.warm.path.exists() else None
            if m is not None:
                found.append(Copy(tier, m["rows"], m["sha256"], m["bytes"]))
            continue
        store = lake.tier(tier)
        if store.exists(spec, partition):
            m = store.manifest(spec, partition)
            found.append(Copy(tier, m["rows"], m["sha256"], m["bytes"]) if m else Copy(tier, -1, "", 0))
        elif tier is Tier.COLD:
            month_file = lake.month_holding(spec, partition)
            if month_file is not None:
                entry = month_file.dates[dict(partition)["date"]]
                found.append(Copy(tier, entry["rows"], entry["sha256"], entry.get("bytes", 0), month_file.month))
    return found


def authoritative(copies: list[Copy]) -> Copy | None:
    """The copy a move takes as its source: the fastest complete one (readers see the same bytes)."""
    return next((c for c in copies if c.complete), None)

"""Moving partitions between tiers: one verified move (copy, verify at the target, then remove the other
copies), and planning and running a migration under a policy, with the sweep of stale temp files."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from lake_resources.catalog.datasets import DATASETS, DatasetSpec, Partition, Tier, dataset_spec, partition_label
from lake_resources.catalog.validation import LakeValidationError, parse_date
from lake_resources.lifecycle.copies import Copy, _date_of, authoritative, copies_of, inventory
from lake_resources.lifecycle.policy import (
    TIER_ORDER,
    DatasetPolicy,
    LifecyclePolicy,
    Log,
    _human,
    _quiet,
    _step,
    load_policy,
    resolve_as_of,
)
from lake_resources.storage import (
    TEMP_FILE_MIN_AGE_SECONDS,
    Lake,
    LakeStorageError,
    PartitionNotFound,
    TempSweep,
    WarmTier,
    encode_parquet,
    sha256,
)


# ============================================================================================
# Moving one partition
# ============================================================================================
class MoveRefused(LakeStorageError):
    """A move the policy forbids (e.g. ticks leaving hot before their bars are in warm/cold)."""


@dataclass(frozen=True)
class MoveResult:
    dataset: str
    partition: Partition
    source: Tier
    target: Tier
    rows: int
    bytes: int
    sha256: str
    copied: bool  # False when a verified copy was already at the target (a re-run finishing a move)
    removed: tuple[Tier, ...]

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "partition": partition_label(self.partition), "source": self.source.value,
                "target": self.target.value, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256,
                "copied": self.copied, "removed": [t.value for t in self.removed]}


def downsampling_gap(lake: Lake, policy: DatasetPolicy, partition: Partition, source: Tier, target: Tier,
                     lower: Mapping[str, set[Partition]] | None = None) -> str | None:
    """Why ``partition`` may not leave hot yet (a required dataset's symbol-day is not in warm/cold), or None."""
    if source is not Tier.HOT or target is Tier.HOT or not policy.requires:
        return None
    values = dict(partition)
    for req in policy.requires:
        req_spec = dataset_spec(req)
        req_part = req_spec.partition(**values)
        if lower is not None and req in lower:
            present = req_part in lower[req]
        else:
            present = any(lake._holds(t, req_spec, req_part) for t in (Tier.WARM, Tier.COLD))
        if not present:
            return (f"{req} {partition_label(req_part)} is not in warm or cold yet, so {policy.dataset} stays hot "
                    f"(materialize {req} for it first)")
    return None


def _read_verified(lake: Lake, spec: DatasetSpec, partition: Partition, copy: Copy) -> tuple[pl.DataFrame, bytes]:
    """The source copy's rows and canonical bytes, checked against its manifest."""
    store = lake.tier(copy.tier)
    if isinstance(store, WarmTier) or copy.month is not None:
        df = lake.read_from(spec, partition, copy.tier)
        data = encode_parquet(df)
    else:
        data = store.read_bytes(spec, partition)
        df = pl.read_parquet(io.BytesIO(data))
    if sha256(data) != copy.sha256 or df.height != copy.rows:
        raise LakeStorageError(
            f"{spec.name} {partition_label(partition)} in {copy.tier.value} does not match its manifest "
            f"(rows {df.height} vs {copy.rows}, sha256 {sha256(data)[:12]}… vs {copy.sha256[:12]}…): not moved"
        )
    return df, data


def move_partition(lake: Lake, dataset: str | DatasetSpec, partition: Partition, target: Tier | str,
                   policy: LifecyclePolicy | None = None, log: Log = _quiet) -> MoveResult:
    """Copy -> verify at the target -> remove the other copies. Safe to re-run after a crash at any step."""
    spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
    target = Tier.parse(target)
    policy = policy or load_policy()
    # The whole move holds the partition's lock: a re-materialization of it waits, then replaces
    # what the move left (or the move, when it comes second, moves the new version).
    with lake.partition_lock(spec, [partition]):
        return _move_locked(lake, spec, partition, target, policy, log)


def _move_locked(lake: Lake, spec: DatasetSpec, partition: Partition, target: Tier, policy: LifecyclePolicy,
                 log: Log) -> MoveResult:
    label = f"{spec.name} {partition_label(partition)}"
    copies = copies_of(lake, spec, partition)
    if not copies:
        raise PartitionNotFound(f"{label} is not stored in any tier (hot, warm, cold)")
    source = authoritative(copies)
    if source is None:
        raise LakeStorageError(f"{label}: no copy has a manifest ({', '.join(c.tier.value for c in copies)}); re-materialize it")
    gap = downsampling_gap(lake, policy.for_dataset(spec.name), partition, copies[0].tier, target)
    if gap:
        raise MoveRefused(f"{label}: {gap}")

    at_target = next((c for c in copies if c.tier is target), None)
    copied = False
    if at_target is None or at_target.sha256 != source.sha256 or at_target.rows != source.rows:
        df, data = _read_verified(lake, spec, partition, source)
        store = lake.tier(target)
        if isinstance(store, WarmTier):
            store.write(spec, partition, df, data)
        else:
            store.write_encoded(spec, partition, data, df)
        copied = True
        log(f"{label}: copied {source.rows} rows {source.tier.value} -> {target.value}")
        _step("move:after_copy")

    ok, detail = lake.verify(spec, partition, target)
    stored = lake.manifest(spec, partition, target)
    if not ok or stored is None or stored["sha256"] != source.sha256 or stored["rows"] != source.rows:
        raise LakeStorageError(f"{label}: verification at {target.value} failed ({detail}); the source copy is kept")
    _step("move:after_verify")

    # Shadowed copies first; the one readers see now goes last, so they never see a stale copy.
    others = [c for c in copies if c.tier is not target]
    others.sort(key=lambda c: c.tier is copies[0].tier)
    for c in others:
        # Writers on this host wait for the lock; one elsewhere (another host on the shared cold tier)
        # may have replaced this copy since the move started: then it is not ours to delete.
        now = lake.manifest(spec, partition, c.tier)
        if (now["sha256"] if now else "") != c.sha256:
            raise LakeStorageError(f"{label}: the {c.tier.value} copy changed during the move (re-materialized?); "
                                   f"it is kept, re-run the migration")
        lake.delete(spec, partition, c.tier)
        log(f"{label}: removed the {c.tier.value} copy")
        _step("move:after_delete")
    return MoveResult(spec.name, partition, source.tier, target, source.rows, source.bytes, source.sha256,
                      copied, tuple(c.tier for c in others))


# ============================================================================================
# Planning and running migrations
# ============================================================================================
@dataclass(frozen=True)
class Move:
    dataset: str
    partition: Partition
    source: Tier
    target: Tier
    rows: int
    bytes: int
    reason: str

    @property
    def date(self) -> date | None:
        return _date_of(self.partition)

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "partition": partition_label(self.partition), "source": self.source.value,
                "target": self.target.value, "rows": self.rows, "bytes": self.bytes, "reason": self.reason}


@dataclass(frozen=True)
class Skip:
    dataset: str
    partition: Partition
    source: Tier
    target: Tier
    reason: str

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "partition": partition_label(self.partition), "source": self.source.value,
                "target": self.target.value, "reason": self.reason}


@dataclass
class MigrationReport:
    as_of: date
    policy_source: str
    dry_run: bool
    planned: list[Move] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    moved: list[MoveResult] = field(default_factory=list)
    failed: list[tuple[Move, str]] = field(default_factory=list)
    temp_files: TempSweep | None = None  # leftovers of interrupted writes swept after the moves
    temp_sweep_error: str | None = None

    @property
    def bytes_moved(self) -> int:
        return sum(m.bytes for m in self.moved)

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(), "policy": self.policy_source, "dry_run": self.dry_run,
            "planned": [m.as_dict() for m in self.planned], "skipped": [s.as_dict() for s in self.skipped],
            "moved": [m.as_dict() for m in self.moved],
            "failed": [m.as_dict() | {"error": err} for m, err in self.failed],
            "temp_files": self.temp_files.as_dict() if self.temp_files else None,
            "temp_sweep_error": self.temp_sweep_error,
        }


def _lower_tier_partitions(lake: Lake, name: str) -> set[Partition]:
    spec = dataset_spec(name)
    return set(inventory(lake, spec, (Tier.WARM, Tier.COLD)))


def hot_bytes(lake: Lake) -> int:
    """Bytes of every partition data file in the hot tier."""
    total = 0
    root = Path(lake.hot.root)
    if root.is_dir():
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if name == "part-0.parquet":
                    total += os.path.getsize(os.path.join(dirpath, name))
    return total


def plan_migration(lake: Lake, policy: LifecyclePolicy, *, datasets: Iterable[str] | None = None,
                   older_than: int | None = None, to: Tier | str | None = None,
                   start: str | date | None = None, end: str | date | None = None,
                   as_of: str | date | None = None) -> MigrationReport:
    """Which partitions move where, and which may not (with the reason). Nothing is changed.

    - Policy mode (no ``to``): each partition goes to the stage its age calls for, only ever towards
      colder tiers; with ``older_than`` partitions that old go to their policy's final tier. Then, if
      the hot tier is over ``hot.max_bytes``, the oldest hot partitions move out until it is not.
    - ``to``: every selected partition goes to that tier (either direction).
    ``older_than``/``start``/``end`` select by partition date (partitions without a date are selected
    only when none of them is given). A partition left in two tiers by an interrupted move is always
    planned, so a re-run finishes the move.
    """
    as_of_day = resolve_as_of(as_of)
    to_tier = Tier.parse(to) if to else None
    lo = parse_date(start) if start else None
    hi = parse_date(end) if end else None
    if older_than is not None and older_than < 0:
        raise LakeValidationError(f"--older-than must be >= 0 days, got {older_than}")
    names = sorted(DATASETS) if datasets is None else [dataset_spec(n).name for n in datasets]
    report = MigrationReport(as_of_day, policy.source, dry_run=True)
    lower_cache: dict[str, set[Partition]] = {}
    hot_candidates: list[tuple[date, str, Partition, Copy]] = []
    selective = older_than is not None or lo is not None or hi is not None

    def lower(pol: DatasetPolicy) -> dict[str, set[Partition]]:
        for req in pol.requires:
            if req not in lower_cache:
                lower_cache[req] = _lower_tier_partitions(lake, req)
        return lower_cache

    def plan(spec: DatasetSpec, pol: DatasetPolicy, p: Partition, copies: list[Copy], target: Tier, reason: str) -> None:
        source = authoritative(copies) or copies[0]
        gap = downsampling_gap(lake, pol, p, copies[0].tier, target, lower(pol))
        if gap:
            report.skipped.append(Skip(spec.name, p, copies[0].tier, target, gap))
        else:
            report.planned.append(Move(spec.name, p, source.tier, target, source.rows, source.bytes, reason))

    for name in names:
        spec = dataset_spec(name)
        pol = policy.for_dataset(name)
        for p, copies in sorted(inventory(lake, spec).items()):
            day = _date_of(p)
            if selective and day is None:
                continue
            if day is not None and ((lo and day < lo) or (hi and day > hi)):
                continue
            age = (as_of_day - day).days if day is not None else None
            if older_than is not None and (age is None or age < older_than):
                continue
            current = copies[0].tier  # the copy readers see
            interrupted = len({c.tier for c in copies}) > 1
            if to_tier is not None:
                target, reason = to_tier, f"--to {to_tier.value}"
            elif older_than is not None:
                target, reason = pol.final_tier, f"age {age} d >= {older_than} d: final stage of {pol.describe()}"
            elif age is not None:
                target, reason = pol.tier_at_age(age), f"age {age} d: {pol.describe()}"
            else:
                target, reason = current, "no date"
            if to_tier is None and TIER_ORDER[target] < TIER_ORDER[current]:
                target = current  # policies only move data towards colder tiers
            if target is current and not interrupted:
                if current is Tier.HOT and day is not None:
                    hot_candidates.append((day, name, p, copies[0]))
                continue
            if interrupted and target is current:
                reason = f"finish an interrupted move: copies in {', '.join(c.tier.value for c in copies)}"
            plan(spec, pol, p, copies, target, reason)

    # Capacity: the oldest hot partitions leave first until the hot tier is under its limit.
    if to_tier is None and policy.hot_max_bytes is not None and hot_candidates:
        leaving = sum(m.bytes for m in report.planned if m.source is Tier.HOT and m.target is not Tier.HOT)
        used = hot_bytes(lake)
        excess = used - leaving - policy.hot_max_bytes
        for day, name, p, copy in sorted(hot_candidates, key=lambda c: (c[0], c[1], c[2])):
            if excess <= 0:
                break
            pol = policy.for_dataset(name)
            target = pol.after(Tier.HOT) or policy.overflow_to
            reason = (f"hot tier holds {_human(used)} > limit {_human(policy.hot_max_bytes)}: oldest first")
            before = len(report.planned)
            plan(dataset_spec(name), pol, p, [copy], target, reason)
            if len(report.planned) > before:
                excess -= copy.bytes
    report.planned.sort(key=lambda m: (m.date or date.min, m.dataset, m.partition))
    return report


def migrate(lake: Lake, policy: LifecyclePolicy | None = None, *, datasets: Iterable[str] | None = None,
            older_than: int | None = None, to: Tier | str | None = None, start: str | date | None = None,
            end: str | date | None = None, as_of: str | date | None = None, dry_run: bool = False,
            temp_min_age_seconds: float = TEMP_FILE_MIN_AGE_SECONDS, log: Log = _quiet) -> MigrationReport:
    """Plan, then move each partition (oldest first); one failure does not stop the others. Then
    sweep the leftovers of interrupted writes older than ``temp_min_age_seconds`` from every tier
    (a dry run only lists them)."""
    policy = policy or load_policy()
    report = plan_migration(lake, policy, datasets=datasets, older_than=older_than, to=to, start=start, end=end, as_of=as_of)
    report.dry_run = dry_run
    if not dry_run:
        _run_moves(lake, policy, report, log)
    try:
        report.temp_files = lake.sweep_temp_files(temp_min_age_seconds, dry_run=dry_run)
    except Exception as exc:  # noqa: BLE001 - reported; the moves above stand
        report.temp_sweep_error = lake.settings.redact(f"{type(exc).__name__}: {exc}")
        log(f"sweeping leftover temp files FAILED: {report.temp_sweep_error}")
    else:
        if report.temp_files.removed:
            log(f"removed {len(report.temp_files.removed)} leftover temp file(s) of interrupted writes "
                f"({_human(sum(t.bytes for t in report.temp_files.removed))})")
    return report


def _run_moves(lake: Lake, policy: LifecyclePolicy, report: MigrationReport, log: Log) -> None:
    for move in report.planned:
        try:
            result = move_partition(lake, move.dataset, move.partition, move.target, policy, log=log)
        except MoveRefused as exc:
            report.skipped.append(Skip(move.dataset, move.partition, move.source, move.target, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - recorded with the partition; the others still move
            message = lake.settings.redact(f"{type(exc).__name__}: {exc}")
            report.failed.append((move, message))
            log(f"FAILED {move.dataset} {partition_label(move.partition)}: {message}")
            continue
        report.moved.append(result)

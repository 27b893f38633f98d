"""Tier lifecycle: retention policies, migration between tiers, cold compaction and storage health.

Policies come from one YAML file (``lifecycle.yaml`` at the repo root, or ``LAKE_LIFECYCLE``), with
built-in defaults for every key. "Now" is injectable everywhere (``as_of``; ``LAKE_AS_OF`` for the CLI).

A move never loses or double-counts data. The copy readers see (the fastest tier holding the
partition, the "authoritative" copy) is:
1. checked against its manifest, then copied to the target tier (same canonical bytes, same SHA-256);
2. verified at the target: the stored copy re-read, its row count and SHA-256 equal to the source's;
3. only then removed from every other tier: shadowed copies first, the authoritative one last.
A crash between any two steps leaves the partition readable (the read surface takes each partition
once, from the fastest tier holding it), and a re-run finds the verified copy and finishes the move.
A move holds the partition's lock (``Lake.partition_lock``), as does every write of it, so a
re-materialization and a move of the same partition run one after the other, never interleaved.

Each migration run also sweeps the leftovers of interrupted writes (hidden temp files, incomplete S3
multipart uploads) older than ``TEMP_FILE_MIN_AGE_SECONDS``; storage health reports them.

Cold compaction rewrites the daily cold files of a closed month into one file per symbol-month
(sorted, exact duplicate rows dropped, higher zstd level, a row group per day), checks every day of
the new file against its inputs before publishing it, and removes the daily files only afterwards.
Daily files shadow the month file for their date, so every date reads exactly once throughout.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from lake_resources.cold_record import unreachable_reason
from lake_resources.datasets import DATASETS, TIER_PREFERENCE, DatasetSpec, Partition, Tier, dataset_spec, partition_label
from lake_resources.settings import LakeSettings
from lake_resources.storage import (
    Lake,
    LakeStorageError,
    TEMP_FILE_MIN_AGE_SECONDS,
    MonthFile,
    PartitionNotFound,
    TempSweep,
    WarmTier,
    day_bounds,
    encode_parquet,
    encode_parquet_days,
    is_compactable,
    prepare_frame,
    sha256,
)
from lake_resources.validation import LakeValidationError, parse_date

POLICY_ENV = "LAKE_LIFECYCLE"
AS_OF_ENV = "LAKE_AS_OF"
#: Test hook: ``step`` or ``step:N`` makes the process SIGKILL itself at the Nth time it reaches ``step``.
KILL_ENV = "LAKE_LIFECYCLE_KILL_AT"
REPO_POLICY_FILE = Path(__file__).resolve().parents[1] / "lifecycle.yaml"

TIER_ORDER = {Tier.HOT: 0, Tier.WARM: 1, Tier.COLD: 2}

Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


# ============================================================================================
# Policies
# ============================================================================================
@dataclass(frozen=True)
class Stage:
    tier: Tier
    days: int | None = None  # None: stays for good


@dataclass(frozen=True)
class DatasetPolicy:
    dataset: str
    stages: tuple[Stage, ...]
    requires: tuple[str, ...] = ()  # must hold the same symbol-day in warm/cold before this leaves hot
    compact: bool = False

    def tier_at_age(self, age_days: int) -> Tier:
        """The stage a partition ``age_days`` old belongs in (stage durations add up)."""
        elapsed = 0
        for stage in self.stages:
            if stage.days is None or age_days < elapsed + stage.days:
                return stage.tier
            elapsed += stage.days
        return self.stages[-1].tier

    @property
    def final_tier(self) -> Tier:
        return self.stages[-1].tier

    def after(self, tier: Tier) -> Tier | None:
        """The first stage colder than ``tier``."""
        return next((s.tier for s in self.stages if TIER_ORDER[s.tier] > TIER_ORDER[tier]), None)

    def describe(self) -> str:
        return " -> ".join(f"{s.tier.value} {s.days} d" if s.days is not None else s.tier.value for s in self.stages)


@dataclass(frozen=True)
class LifecyclePolicy:
    datasets: Mapping[str, DatasetPolicy]
    hot_max_bytes: int | None = 50 * 2**30
    overflow_to: Tier = Tier.COLD
    hot_min_free_bytes: int = 5 * 2**30
    zstd_level: int = 15
    row_group_rows: int = 131072
    wait_for_upper_tiers: bool = True
    schedules_running: bool = True
    migration_cron: str = "0 2 * * *"
    compaction_cron: str = "0 4 * * *"
    storage_health_cron: str = "0 * * * *"
    verify_cron: str = "0 5 * * *"  # checksums of every partition copy (storage_verify job)
    source: str = "built-in defaults"

    def for_dataset(self, name: str) -> DatasetPolicy:
        if name in self.datasets:
            return self.datasets[name]
        return DatasetPolicy(name, (Stage(dataset_spec(name).tier),))


DEFAULT_POLICY_DOC: dict[str, Any] = {
    "datasets": {
        "ticks": {"stages": [{"tier": "hot", "days": 7}, {"tier": "cold"}], "requires": ["bars_1m"], "compact": True},
        "bars_1m": {"stages": [{"tier": "warm", "days": 180}, {"tier": "cold"}], "compact": True},
        "bars_5m": {"stages": [{"tier": "warm"}]},
        "bars_1h": {"stages": [{"tier": "warm"}]},
        "bars_1d": {"stages": [{"tier": "warm"}]},
    },
    "hot": {"max_bytes": "50GiB", "overflow_to": "cold", "min_free_bytes": "5GiB"},
    "compaction": {"zstd_level": 15, "row_group_rows": 131072, "wait_for_upper_tiers": True},
    "schedules": {"running": True, "migration": "0 2 * * *", "compaction": "0 4 * * *", "storage_health": "0 * * * *",
                  "verify": "0 5 * * *"},
}

_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(value: Any, where: str) -> int:
    """``50GiB``, ``500 MB``, ``1048576`` -> bytes."""
    if isinstance(value, bool):
        raise LakeValidationError(f"{where}: expected a size such as 50GiB, got {value!r}")
    if isinstance(value, int | float) and value >= 0:
        return int(value)
    text = str(value).strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):]
    try:
        amount = float(number)
    except ValueError:
        amount = -1
    if unit not in _SIZE_UNITS or amount < 0:
        raise LakeValidationError(f"{where}: expected a size such as 50GiB or 500MB, got {value!r}")
    return int(amount * _SIZE_UNITS[unit])


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "datasets":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _expect_keys(section: Any, allowed: set[str], where: str) -> dict:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise LakeValidationError(f"{where}: expected a mapping, got {type(section).__name__}")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise LakeValidationError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return section


def parse_policy(doc: Mapping[str, Any] | None, source: str = "built-in defaults") -> LifecyclePolicy:
    """A validated policy from a YAML document; keys left out take the built-in defaults."""
    doc = _expect_keys(doc, {"datasets", "hot", "compaction", "schedules"}, source)
    merged = _merge(DEFAULT_POLICY_DOC, doc)
    if "datasets" in doc:  # a file's dataset list is merged per dataset over the defaults
        merged["datasets"] = {**DEFAULT_POLICY_DOC["datasets"], **(_expect_keys(doc["datasets"], set(DATASETS), f"{source}: datasets"))}

    policies: dict[str, DatasetPolicy] = {}
    for name, body in merged["datasets"].items():
        where = f"{source}: datasets.{name}"
        spec = dataset_spec(name)
        body = _expect_keys(body, {"stages", "requires", "compact"}, where)
        raw_stages = body.get("stages") or [{"tier": spec.tier.value}]
        if not isinstance(raw_stages, list):
            raise LakeValidationError(f"{where}.stages: expected a list such as [{{tier: hot, days: 7}}, {{tier: cold}}]")
        stages = []
        for i, raw in enumerate(raw_stages):
            raw = _expect_keys(raw, {"tier", "days"}, f"{where}.stages[{i}]")
            try:
                tier = Tier.parse(raw.get("tier"))
            except LakeValidationError as exc:
                raise LakeValidationError(f"{where}.stages[{i}].tier: {exc}") from None
            days = raw.get("days")
            last = i == len(raw_stages) - 1
            if days is None and not last:
                raise LakeValidationError(f"{where}.stages[{i}]: only the last stage may omit days")
            if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
                raise LakeValidationError(f"{where}.stages[{i}].days: expected a whole number of days >= 0, got {days!r}")
            if stages and TIER_ORDER[tier] <= TIER_ORDER[stages[-1].tier]:
                raise LakeValidationError(f"{where}.stages: tiers must get colder (hot -> warm -> cold), got {stages[-1].tier.value} then {tier.value}")
            stages.append(Stage(tier, days if not last else None))
        requires = body.get("requires") or []
        if not isinstance(requires, list):
            raise LakeValidationError(f"{where}.requires: expected a list of datasets")
        for req in requires:
            req_spec = dataset_spec(req)
            if req_spec.partition_by != spec.partition_by:
                raise LakeValidationError(f"{where}.requires: {req} is partitioned by {req_spec.partition_by}, {name} by {spec.partition_by}")
        compact = body.get("compact", False)
        if not isinstance(compact, bool):
            raise LakeValidationError(f"{where}.compact: expected true or false, got {compact!r}")
        if compact and not is_compactable(spec):
            raise LakeValidationError(f"{where}.compact: only symbol x date datasets can be compacted, {name} is partitioned by {spec.partition_by}")
        policies[name] = DatasetPolicy(name, tuple(stages), tuple(requires), compact)

    hot = _expect_keys(merged["hot"], {"max_bytes", "overflow_to", "min_free_bytes"}, f"{source}: hot")
    comp = _expect_keys(merged["compaction"], {"zstd_level", "row_group_rows", "wait_for_upper_tiers"}, f"{source}: compaction")
    sched = _expect_keys(merged["schedules"], {"running", "migration", "compaction", "storage_health", "verify"},
                         f"{source}: schedules")
    level = comp["zstd_level"]
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 22:
        raise LakeValidationError(f"{source}: compaction.zstd_level: expected 1..22, got {level!r}")
    rg = comp["row_group_rows"]
    if isinstance(rg, bool) or not isinstance(rg, int) or rg < 1024:
        raise LakeValidationError(f"{source}: compaction.row_group_rows: expected a whole number >= 1024, got {rg!r}")
    try:
        overflow = Tier.parse(hot["overflow_to"])
    except LakeValidationError as exc:
        raise LakeValidationError(f"{source}: hot.overflow_to: {exc}") from None
    if overflow is Tier.HOT:
        raise LakeValidationError(f"{source}: hot.overflow_to must be warm or cold")
    for key in ("wait_for_upper_tiers",):
        if not isinstance(comp[key], bool):
            raise LakeValidationError(f"{source}: compaction.{key}: expected true or false")
    if not isinstance(sched["running"], bool):
        raise LakeValidationError(f"{source}: schedules.running: expected true or false")
    for key in ("migration", "compaction", "storage_health", "verify"):
        if not isinstance(sched[key], str) or len(sched[key].split()) != 5:
            raise LakeValidationError(f"{source}: schedules.{key}: expected a 5-field cron string, got {sched[key]!r}")
    return LifecyclePolicy(
        datasets=policies,
        hot_max_bytes=None if hot["max_bytes"] is None else parse_size(hot["max_bytes"], f"{source}: hot.max_bytes"),
        overflow_to=overflow,
        hot_min_free_bytes=parse_size(hot["min_free_bytes"], f"{source}: hot.min_free_bytes"),
        zstd_level=level,
        row_group_rows=rg,
        wait_for_upper_tiers=comp["wait_for_upper_tiers"],
        schedules_running=sched["running"],
        migration_cron=sched["migration"],
        compaction_cron=sched["compaction"],
        storage_health_cron=sched["storage_health"],
        verify_cron=sched["verify"],
        source=source,
    )


def policy_path(env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    if env.get(POLICY_ENV):
        return Path(env[POLICY_ENV]).expanduser()
    return REPO_POLICY_FILE if REPO_POLICY_FILE.exists() else None


def load_policy(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> LifecyclePolicy:
    """The policy from ``path``, else ``LAKE_LIFECYCLE``, else the repo's ``lifecycle.yaml``, else defaults."""
    path = Path(path) if path is not None else policy_path(env)
    if path is None:
        return parse_policy({})
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LakeValidationError(f"lifecycle policy file {path} not found (set by {POLICY_ENV} or the repo's lifecycle.yaml)") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LakeValidationError(f"lifecycle policy file {path}: not valid YAML: {exc}") from None
    return parse_policy(doc, str(path))


def resolve_as_of(value: str | date | None = None, env: Mapping[str, str] | None = None) -> date:
    """The "now" of age-based policies: ``value``, else ``LAKE_AS_OF``, else today (UTC)."""
    env = os.environ if env is None else env
    if value is None or value == "":
        value = env.get(AS_OF_ENV) or None
    if value is None:
        return datetime.now(timezone.utc).date()
    return parse_date(value)


# ============================================================================================
# Crash hook (tests kill the process between steps)
# ============================================================================================
_step_counts: dict[str, int] = {}


def _step(name: str) -> None:
    """A step boundary: with ``LAKE_LIFECYCLE_KILL_AT=name[:N]`` the process SIGKILLs itself here."""
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    target, sep, nth = wanted.rpartition(":")
    if not sep or not nth.isdigit():
        target, nth = wanted, "1"
    if target != name:
        return
    _step_counts[name] = _step_counts.get(name, 0) + 1
    if _step_counts[name] >= int(nth or 1):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


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


# ============================================================================================
# Cold compaction
# ============================================================================================
@dataclass
class CompactionResult:
    dataset: str
    symbol: str
    month: str
    status: str  # compacted | planned | skipped | nothing to do
    reason: str = ""
    days: list[str] = field(default_factory=list)
    rows: int = 0
    duplicates_dropped: int = 0
    bytes: int = 0
    input_bytes: int = 0
    daily_files_removed: int = 0
    uri: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _month_bounds(month: str) -> tuple[date, date]:
    first = date.fromisoformat(f"{month}-01")
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def plan_compaction(lake: Lake, policy: LifecyclePolicy, *, datasets: Iterable[str] | None = None,
                    symbols: Iterable[str] | None = None, month: str | None = None,
                    as_of: str | date | None = None, force: bool = False) -> list[CompactionResult]:
    """Closed months with daily cold files, as ``planned`` (or ``skipped`` with the reason)."""
    as_of_day = resolve_as_of(as_of)
    current_month = _month_of(as_of_day)
    if datasets is None:
        names = [n for n, p in policy.datasets.items() if p.compact]
    else:
        names = [dataset_spec(n).name for n in datasets]
    out: list[CompactionResult] = []
    for name in sorted(names):
        spec = dataset_spec(name)
        if not is_compactable(spec):
            raise LakeValidationError(f"{name} is partitioned by {spec.partition_by}: only symbol x date datasets are compacted")
        syms = list(symbols) if symbols is not None else None
        groups: dict[tuple[str, str], list[str]] = {}
        for p in lake.cold.list(spec, syms):
            fields = dict(p)
            m = fields["date"][:7]
            if month is None or m == month:
                groups.setdefault((fields["symbol"], m), []).append(fields["date"])
        for (symbol, m), days in sorted(groups.items()):
            result = CompactionResult(name, symbol, m, "planned", days=sorted(days))
            if m >= current_month:
                result.status, result.reason = "skipped", f"month not closed as of {as_of_day.isoformat()}"
            elif policy.wait_for_upper_tiers and not force:
                first, last = _month_bounds(m)
                upper = [l for l in lake.locate(spec, [symbol], first, last) if l.tier is not Tier.COLD]
                if upper:
                    result.status = "skipped"
                    result.reason = (f"{len(upper)} day(s) of {symbol} {m} still in "
                                     f"{'/'.join(sorted({l.tier.value for l in upper}))} (compaction.wait_for_upper_tiers; "
                                     f"force to compact now)")
            out.append(result)
    return out


def compact_month(lake: Lake, dataset: str, symbol: str, month: str, policy: LifecyclePolicy | None = None,
                  log: Log = _quiet) -> CompactionResult:
    """Compact the daily cold files of one symbol-month (merged with the days an existing month file
    already serves) into ``{cold}/{dataset}/symbol=X/month=YYYY-MM/part-0.parquet``.

    Every day of the new file is checked against its input before the file is published, the stored
    object is checked byte for byte, and only then are the daily files removed. Re-running after a
    crash at any point converges to the same file."""
    policy = policy or load_policy()
    spec = dataset_spec(dataset)
    if not is_compactable(spec):
        raise LakeValidationError(f"{dataset} is partitioned by {spec.partition_by}: only symbol x date datasets are compacted")
    first, last = _month_bounds(month)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    # Every day of the month is locked: a write or move of any of them also rewrites the month manifest.
    with lake.partition_lock(spec, [spec.partition(symbol=symbol, date=d) for d in days]):
        return _compact_locked(lake, spec, symbol, month, policy, log)


def _compact_locked(lake: Lake, spec: DatasetSpec, symbol: str, month: str, policy: LifecyclePolicy,
                    log: Log) -> CompactionResult:
    cold = lake.cold
    first, last = _month_bounds(month)
    daily = [p for p in cold.list(spec, [symbol]) if first <= _date_of(p) <= last]
    result = CompactionResult(spec.name, symbol, month, "nothing to do")
    if not daily:
        result.reason = "no daily cold files in this month"
        return result
    existing = cold.month_file(spec, symbol, month)
    daily_days = {dict(p)["date"] for p in daily}
    kept = sorted(d for d in (existing.dates if existing else {}) if d not in daily_days)
    tcol = spec.time_column

    # Inputs, each checked against its manifest: a mismatch stops this month before anything changes.
    inputs: dict[str, tuple[pl.DataFrame, str | None]] = {}
    manifests = cold.manifests(spec, daily)
    for p in daily:
        day = dict(p)["date"]
        data = cold.read_bytes(spec, p)
        m = manifests.get(p)
        if m is None or sha256(data) != m["sha256"]:
            raise LakeStorageError(f"{spec.name} {partition_label(p)} in cold does not match its manifest: "
                                   f"{symbol} {month} not compacted")
        result.input_bytes += len(data)
        inputs[day] = (pl.read_parquet(io.BytesIO(data)), m.get("schema"))
    if kept:
        old_data = cold.read_month_bytes(existing)
        for day in kept:
            df = cold.read_month_day(spec, existing, day, data=old_data)
            if sha256(encode_parquet(df)) != existing.dates[day]["sha256"]:
                raise LakeStorageError(f"{spec.name} symbol={symbol}, date={day} in month file {existing.uri} does not "
                                       f"match its manifest: {symbol} {month} not compacted")
            inputs[day] = (df, existing.dates[day].get("schema"))
        result.input_bytes += existing.bytes

    days = sorted(inputs)
    entries: dict[str, dict] = {}
    frames = []
    for day in days:
        df, schema = inputs[day]
        lo, hi = day_bounds(day)
        if df.height and (df[tcol].min() < lo or df[tcol].max() >= hi):
            raise LakeStorageError(f"{spec.name} symbol={symbol}, date={day}: rows outside that UTC day; not compacted")
        df = prepare_frame(spec, df)
        unique = df.unique(maintain_order=True)  # exact duplicate rows only
        encoded = encode_parquet(unique)
        entries[day] = {
            "rows": unique.height, "sha256": sha256(encoded), "bytes": len(encoded),
            "min_ts": unique[tcol].min().isoformat() if unique.height else None,
            "max_ts": unique[tcol].max().isoformat() if unique.height else None,
            "schema": schema or json.dumps({k: str(v) for k, v in unique.schema.items()}),
            "duplicates_dropped": df.height - unique.height,
        }
        frames.append(unique)
    month_df = pl.concat(frames, how="diagonal_relaxed")
    data = encode_parquet_days(month_df, tcol, compression_level=policy.zstd_level, row_group_rows=policy.row_group_rows)
    uri = cold.month_uri(spec, symbol, month)
    manifest = {
        "dataset": spec.name, "tier": Tier.COLD.value, "symbol": symbol, "month": month, "uri": uri,
        "rows": month_df.height, "sha256": sha256(data), "bytes": len(data),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "zstd_level": policy.zstd_level, "row_group_rows": policy.row_group_rows,
        "duplicates_dropped": sum(e["duplicates_dropped"] for e in entries.values()),
        "dates": entries,
    }
    # Verify the new file against the inputs before it is published.
    candidate = MonthFile(spec.name, symbol, month, uri, manifest)
    for day in days:
        back = cold.read_month_day(spec, candidate, day, data=data)
        if sha256(encode_parquet(back)) != entries[day]["sha256"] or back.height != entries[day]["rows"]:
            raise LakeStorageError(f"{spec.name} symbol={symbol}, date={day}: the compacted copy differs from its "
                                   f"input; {symbol} {month} not compacted")

    cold.write_month_data(spec, symbol, month, data)
    _step("compact:after_data")
    stored = cold.read_month_bytes(candidate)
    if sha256(stored) != manifest["sha256"]:
        raise LakeStorageError(f"{uri}: stored object differs from what was written (sha256); daily files kept")
    cold.write_month_manifest(spec, symbol, month, manifest)
    _step("compact:after_manifest")
    log(f"{spec.name} {symbol} {month}: {len(days)} days, {month_df.height} rows -> {uri} ({_human(len(data))})")
    for p in daily:
        cold.delete(spec, p)
        result.daily_files_removed += 1
        _step("compact:after_daily_delete")
    result.status = "compacted"
    result.days = days
    result.rows = month_df.height
    result.duplicates_dropped = manifest["duplicates_dropped"]
    result.bytes = len(data)
    result.uri = uri
    return result


def compact(lake: Lake, policy: LifecyclePolicy | None = None, *, datasets: Iterable[str] | None = None,
            symbols: Iterable[str] | None = None, month: str | None = None, as_of: str | date | None = None,
            force: bool = False, dry_run: bool = False, log: Log = _quiet) -> list[CompactionResult]:
    """Compact every closed symbol-month with daily cold files; failures are reported per month."""
    policy = policy or load_policy()
    out = []
    for planned in plan_compaction(lake, policy, datasets=datasets, symbols=symbols, month=month, as_of=as_of, force=force):
        if planned.status != "planned" or dry_run:
            out.append(planned)
            continue
        try:
            out.append(compact_month(lake, planned.dataset, planned.symbol, planned.month, policy, log=log))
        except Exception as exc:  # noqa: BLE001 - reported with the month; the others still run
            planned.status, planned.reason = "failed", lake.settings.redact(f"{type(exc).__name__}: {exc}")
            log(f"FAILED {planned.dataset} {planned.symbol} {planned.month}: {planned.reason}")
            out.append(planned)
    return out


# ============================================================================================
# Storage health
# ============================================================================================
@dataclass
class TierUsage:
    dataset: str
    tier: str
    partitions: int = 0
    rows: int = 0
    bytes: int = 0
    oldest: str | None = None
    newest: str | None = None
    month_files: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class StorageReport:
    usage: list[TierUsage]
    hot_disk: dict
    interrupted: list[dict]  # partitions held by more than one tier (an interrupted move; re-run migrate)
    temp_files: TempSweep | None = None  # leftovers of interrupted writes (stale: the next migration removes them)
    temp_files_error: str | None = None  # why they could not be listed (e.g. a read-only S3 key)
    tier_errors: dict[str, str] = field(default_factory=dict)  # tiers left out, e.g. {"cold": "unreachable: ..."}

    def totals(self) -> dict[str, dict[str, int]]:
        out = {t.value: {"partitions": 0, "rows": 0, "bytes": 0} for t in TIER_PREFERENCE}
        for u in self.usage:
            for key in ("partitions", "rows", "bytes"):
                out[u.tier][key] += getattr(u, key)
        for tier, error in self.tier_errors.items():
            out[tier] = {"partitions": None, "rows": None, "bytes": None, "error": error}
        return out

    def as_dict(self) -> dict:
        return {"datasets": [u.as_dict() for u in self.usage], "totals": self.totals(),
                "hot_disk": self.hot_disk, "interrupted_moves": self.interrupted,
                "temp_files": self.temp_files.as_dict() if self.temp_files else None,
                "temp_files_error": self.temp_files_error, "tier_errors": self.tier_errors}


def hot_disk(lake: Lake, policy: LifecyclePolicy) -> dict:
    """Free space of the disk holding the hot tier, against the policy's warning threshold."""
    path = Path(lake.hot.root)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total,
            "min_free_bytes": policy.hot_min_free_bytes, "warning": usage.free < policy.hot_min_free_bytes}


def storage_report(lake: Lake, policy: LifecyclePolicy | None = None, datasets: Iterable[str] | None = None) -> StorageReport:
    """Partitions, rows, bytes, oldest and newest partition per dataset and tier (from manifests)."""
    policy = policy or load_policy()
    names = sorted(DATASETS) if datasets is None else [dataset_spec(n).name for n in datasets]
    usage: list[TierUsage] = []
    interrupted: list[dict] = []
    tiers, tier_errors = list(TIER_PREFERENCE), {}
    for name in names:
        spec = dataset_spec(name)
        try:
            inv = inventory(lake, spec, tiers)
        except Exception as exc:
            reason = unreachable_reason(exc) if lake.settings.cold_is_s3 and Tier.COLD in tiers else None
            if reason is None:
                raise
            # The S3 cold tier is down: report hot and warm (and a local raw zone) without it.
            tier_errors["cold"] = lake.settings.redact(f"unreachable: {lake.settings.s3_endpoint}: {reason}")
            tiers.remove(Tier.COLD)
            inv = inventory(lake, spec, tiers)
        per_tier: dict[Tier, TierUsage] = {}
        months: dict[Tier, set] = {}
        for p, copies in inv.items():
            if len({c.tier for c in copies}) > 1:
                interrupted.append({"dataset": name, "partition": partition_label(p), "tiers": [c.tier.value for c in copies]})
            for c in copies:
                u = per_tier.setdefault(c.tier, TierUsage(name, c.tier.value))
                u.partitions += 1
                u.rows += max(c.rows, 0)
                if c.month is None:
                    u.bytes += c.bytes
                else:
                    months.setdefault(c.tier, set()).add((dict(p)["symbol"], c.month))
                day = dict(p).get("date")
                if day:
                    u.oldest = min(u.oldest or day, day)
                    u.newest = max(u.newest or day, day)
        if Tier.COLD in months:  # month files count once, with their file size
            u = per_tier[Tier.COLD]
            files = {(mf.symbol, mf.month): mf for mf in lake.cold.catalogue(spec)[1]}
            u.month_files = len(months[Tier.COLD])
            u.bytes += sum(files[k].bytes for k in months[Tier.COLD] if k in files)
        usage.extend(per_tier[t] for t in TIER_PREFERENCE if t in per_tier)
    report = StorageReport(usage, hot_disk(lake, policy), interrupted, tier_errors=tier_errors)
    try:
        report.temp_files = lake.find_temp_files(local_only=bool(tier_errors))
    except LakeStorageError as exc:  # the rest of the report stands (a read-only key cannot list uploads)
        report.temp_files_error = lake.settings.redact(str(exc))
    return report


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def format_storage(report: StorageReport) -> str:
    header = f"{'dataset':16} {'tier':5} {'partitions':>10} {'rows':>14} {'bytes':>11}  {'oldest':10}  {'newest':10}"
    lines = [header, "-" * len(header)]
    for u in report.usage:
        extra = f"  ({u.month_files} month file{'s' if u.month_files != 1 else ''})" if u.month_files else ""
        lines.append(f"{u.dataset:16} {u.tier:5} {u.partitions:>10,} {u.rows:>14,} {_human(u.bytes):>11}  "
                     f"{u.oldest or '-':10}  {u.newest or '-':10}{extra}")
    if not report.usage:
        lines.append("(the lake is empty)")
    lines.append("")
    for tier, t in report.totals().items():
        if t.get("error"):
            lines.append(f"{tier:5} total: {t['error']}")
            continue
        lines.append(f"{tier:5} total: {t['partitions']:,} partitions, {t['rows']:,} rows, {_human(t['bytes'])}")
    d = report.hot_disk
    warn = "  WARNING: below the threshold" if d["warning"] else ""
    lines.append(f"hot disk ({d['path']}): {_human(d['free_bytes'])} free of {_human(d['total_bytes'])} "
                 f"(warning below {_human(d['min_free_bytes'])}){warn}")
    if report.interrupted:
        lines.append(f"{len(report.interrupted)} partition(s) in more than one tier (an interrupted move): run `lake migrate` to finish")
    temp = report.temp_files
    if report.temp_files_error:
        lines.append(f"leftover temp files of interrupted writes: not listed: {report.temp_files_error}")
    if temp and (temp.stale or temp.fresh):
        lines.append(f"leftover temp files of interrupted writes: {len(temp.stale)} stale ({_human(sum(t.bytes for t in temp.stale))}, "
                     f"older than {temp.min_age_seconds / 3600:g} h: the next `lake migrate` removes them), "
                     f"{len(temp.fresh)} recent ({_human(sum(t.bytes for t in temp.fresh))}, may be writes in progress)")
    return "\n".join(lines)


# ============================================================================================
# CLI (`lake migrate`, `lake storage`)
# ============================================================================================
def _date_span(partitions: list[Partition]) -> str:
    days = sorted(d.isoformat() for d in (_date_of(p) for p in partitions) if d is not None)
    return "" if not days else f", {days[0]}" if days[0] == days[-1] else f", {days[0]}..{days[-1]}"


def _print_migration(report: MigrationReport, verbose: bool = False) -> None:
    """A summary per dataset and move (partitions, rows, bytes, dates); every partition with ``verbose``.
    Failures are always listed one by one."""
    print(f"as of {report.as_of.isoformat()}, policy {report.policy_source}{' (dry run)' if report.dry_run else ''}")
    done = {(m.dataset, m.partition) for m in report.moved}
    failed = {(m.dataset, m.partition): err for m, err in report.failed}
    groups: dict[tuple[str, str, str, str], list[Move]] = {}
    for m in report.planned:
        key = (m.dataset, m.partition)
        if report.dry_run:
            verb = "would move"
        elif key in done:
            verb = "moved"
        elif key in failed:
            verb = "FAILED"
        else:
            continue  # refused at move time: listed under skipped
        groups.setdefault((verb, m.dataset, m.source.value, m.target.value), []).append(m)
        if verbose or verb == "FAILED":
            line = (f"{verb:10} {m.dataset} {partition_label(m.partition)}: {m.source.value} -> {m.target.value}, "
                    f"{m.rows:,} rows, {_human(m.bytes)} ({m.reason})")
            print(line + (f": {failed[key]}" if key in failed else ""))
    skips: dict[tuple[str, str, str], list[Skip]] = {}
    for s in report.skipped:
        skips.setdefault((s.dataset, s.source.value, s.target.value), []).append(s)
        if verbose:
            print(f"{'skipped':10} {s.dataset} {partition_label(s.partition)}: {s.source.value} -> {s.target.value}: {s.reason}")
    if groups or skips:
        print("summary:" if verbose else "summary (-v lists every partition):")
    for (verb, dataset, source, target), moves in groups.items():
        print(f"  {verb:10} {dataset:16} {source} -> {target}: {len(moves)} partition(s), "
              f"{sum(m.rows for m in moves):,} rows, {_human(sum(m.bytes for m in moves))}"
              f"{_date_span([m.partition for m in moves])}")
    for (dataset, source, target), skipped in skips.items():
        print(f"  {'skipped':10} {dataset:16} {source} -> {target}: {len(skipped)} partition(s)"
              f"{_date_span([s.partition for s in skipped])}, e.g. {skipped[0].reason}")
    if report.dry_run:
        print(f"{len(report.planned)} partition(s) would move ({_human(sum(m.bytes for m in report.planned))}), "
              f"{len(report.skipped)} skipped")
    else:
        print(f"moved {len(report.moved)} partition(s) ({_human(report.bytes_moved)}), "
              f"skipped {len(report.skipped)}, failed {len(report.failed)}")
    temp = report.temp_files
    if temp and temp.stale:
        verb = "would remove" if report.dry_run else "removed"
        print(f"{verb} {len(temp.stale)} leftover temp file(s) of interrupted writes ({_human(sum(t.bytes for t in temp.stale))})")
    if report.temp_sweep_error:
        print(f"sweeping leftover temp files FAILED: {report.temp_sweep_error}")


def cli_migrate(settings: LakeSettings, args) -> int:
    """``lake migrate [--dataset D] [--older-than DAYS] [--to hot|warm|cold] [--dry-run]``; "now" from
    ``--as-of`` when the parser has it, else ``LAKE_AS_OF``, else today. ``--compact`` (when present)
    also compacts closed months afterwards."""
    policy = load_policy()
    lake = Lake(settings)
    lake.ensure_bucket()
    as_of = getattr(args, "as_of", None)
    dry_run = bool(getattr(args, "dry_run", False))
    report = migrate(
        lake, policy,
        datasets=[args.dataset] if getattr(args, "dataset", None) else None,
        older_than=getattr(args, "older_than", None),
        to=getattr(args, "to", None),
        start=getattr(args, "start", None), end=getattr(args, "end", None),
        as_of=as_of, dry_run=dry_run,
    )
    if getattr(args, "json", False):
        print(json.dumps(report.as_dict(), indent=1, default=str))
    else:
        _print_migration(report, verbose=bool(getattr(args, "verbose", False)))
    status = 1 if report.failed or report.temp_sweep_error else 0
    if getattr(args, "compact", False):
        results = compact(lake, policy, datasets=[args.dataset] if getattr(args, "dataset", None) and
                          is_compactable(dataset_spec(args.dataset)) else None, as_of=as_of, dry_run=dry_run)
        for r in results:
            print(f"compaction {r.status:10} {r.dataset} {r.symbol} {r.month}"
                  + (f": {len(r.days)} days, {r.rows:,} rows, {_human(r.bytes)}" if r.status == "compacted" else "")
                  + (f": {r.reason}" if r.reason else ""))
        status = status or (1 if any(r.status == "failed" for r in results) else 0)
    return status


def cli_storage(settings: LakeSettings, args) -> int:
    """``lake storage [--json]``: partitions, rows and bytes per dataset and tier; hot-disk free space.
    ``--verify``: checksums of every copy instead (``damage.cli_verify``), exit status 1 on damage."""
    lake = Lake(settings)
    if getattr(args, "verify", False):
        from lake_resources.damage import cli_verify

        return cli_verify(lake, args)
    report = storage_report(lake, load_policy())
    if getattr(args, "json", False):
        print(json.dumps(report.as_dict(), indent=1, default=str))
    else:
        print(format_storage(report))
    for tier, error in report.tier_errors.items():
        print(f"lake storage: {tier} tier {error}", file=sys.stderr)
    return 1 if report.tier_errors else 0

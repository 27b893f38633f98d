"""Retention policies (``lifecycle.yaml`` or ``LAKE_LIFECYCLE``, built-in defaults for every key), the
injectable "now" (``as_of``, ``LAKE_AS_OF``) and the crash hook tests use to kill a run between steps."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from lake_resources.catalog.datasets import DATASETS, Tier, dataset_spec
from lake_resources.catalog.validation import LakeValidationError, parse_date
from lake_resources.storage import (
    is_compactable,
)

POLICY_ENV = "LAKE_LIFECYCLE"
AS_OF_ENV = "LAKE_AS_OF"
#: Test hook: ``step`` or ``step:N`` makes the process SIGKILL itself at the Nth time it reaches ``step``.
KILL_ENV = "LAKE_LIFECYCLE_KILL_AT"
REPO_POLICY_FILE = Path(__file__).resolve().parents[2] / "lifecycle.yaml"

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


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


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

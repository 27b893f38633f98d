"""Storage health (``storage_report``, ``format_storage``) and the output of ``lake migrate`` and
``lake storage``."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lake_resources.catalog.datasets import DATASETS, TIER_PREFERENCE, Partition, Tier, dataset_spec, partition_label
from lake_resources.lifecycle.compaction import compact
from lake_resources.lifecycle.copies import _date_of, inventory
from lake_resources.lifecycle.migration import MigrationReport, Move, Skip, migrate
from lake_resources.lifecycle.policy import LifecyclePolicy, _human, load_policy
from lake_resources.settings import LakeSettings
from lake_resources.storage import (
    Lake,
    LakeStorageError,
    TempSweep,
    is_compactable,
)
from lake_resources.storage.cold_record import unreachable_reason


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
        from lake_resources.lifecycle.damage import cli_verify

        return cli_verify(lake, args)
    report = storage_report(lake, load_policy())
    if getattr(args, "json", False):
        print(json.dumps(report.as_dict(), indent=1, default=str))
    else:
        print(format_storage(report))
    for tier, error in report.tier_errors.items():
        print(f"lake storage: {tier} tier {error}", file=sys.stderr)
    return 1 if report.tier_errors else 0

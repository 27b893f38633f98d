"""Damaged partitions: found by a full checksum pass (``lake storage --verify``, the scheduled check)
or, when a read fails, by a quick look at the partitions it covered, so the error names them.

A copy is damaged when it no longer matches its manifest: a Parquet file whose SHA-256 or row count
differs (truncated, overwritten, bit-flipped), one that is unreadable, or warm rows DuckDB cannot read
back (a corrupted block) or that re-encode to another SHA-256. A copy matching the previous version its
manifest names (a write interrupted before the swap) is not damage. Re-writing the partition
(re-materializing it, or ``Lake.write``) replaces the copy and its manifest: that is the repair.

The quick look after a failed read costs nothing on reads that succeed: it compares each Parquet file's
size with its manifest and opens its footer, and reads the warm partitions one by one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

import pyarrow.parquet as pq

from lake_resources.catalog.datasets import DATASETS, DatasetSpec, Partition, Tier, dataset_spec
from lake_resources.storage import Lake, LakeStorageError, Located, encode_parquet, sha256
from lake_resources.storage.layout import Damage


# --------------------------------------------------------------------------------------------
# After a failed read: which of the partitions it covered are damaged?
# --------------------------------------------------------------------------------------------
def _parquet_problem(path: str, size: int | None, manifest: dict | None) -> str | None:
    """Why a Parquet copy cannot be right, from its size and footer alone (None: looks whole)."""
    if size is None:
        return "the data file is missing"
    if manifest is not None:
        sizes = {manifest.get("bytes")} | {e.get("bytes") for e in manifest.get("superseded", [])}
        if size not in sizes:
            return f"{size:,} bytes, the manifest says {manifest.get('bytes'):,}"
    if path.startswith("s3://"):
        return None
    try:
        pq.read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - any failure to parse the footer is the finding
        return f"unreadable Parquet: {str(exc).splitlines()[0][:160]}"
    return None


def _size(lake: Lake, tier: Tier, path: str) -> int | None:
    store = lake.tier(tier)
    try:
        return os.path.getsize(path) if store.is_local else int(store.fs.info(path)["size"])
    except FileNotFoundError:
        return None


def quick_check(lake: Lake, spec: DatasetSpec, located: Iterable[Located]) -> list[Damage]:
    """The partitions of ``located`` whose copy cannot be right (see the module docstring)."""
    located = list(located)
    found: list[Damage] = []
    for tier in (Tier.HOT, Tier.COLD):
        store = lake.tier(tier)
        daily = [l.partition for l in located if l.tier is tier and l.month is None]
        manifests = store.manifests(spec, daily)
        for p in daily:
            uri = store.uri(spec, p)
            problem = _parquet_problem(uri, _size(lake, tier, uri), manifests.get(p))
            if problem:
                found.append(Damage(spec.name, p, tier.value, uri, problem))
        months: dict[tuple[str, str], list[Partition]] = {}
        for l in located:
            if l.tier is tier and l.month is not None:
                months.setdefault((dict(l.partition)["symbol"], l.month), []).append(l.partition)
        for (symbol, month), parts in months.items():
            month_file = lake.cold.month_file(spec, symbol, month)
            uri = lake.cold.month_uri(spec, symbol, month)
            size = _size(lake, tier, uri)
            problem = "the month file is gone" if month_file is None else _parquet_problem(
                uri, size, {"bytes": month_file.bytes} if month_file.bytes else None)
            found += [Damage(spec.name, p, tier.value, uri, problem) for p in parts] if problem else []
    warm = [l.partition for l in located if l.tier is Tier.WARM]
    if warm:
        found += [d for d in check_warm(lake, spec, warm, full=False)]
    return found


def check_warm(lake: Lake, spec: DatasetSpec, partitions: list[Partition], *, full: bool) -> list[Damage]:
    """Warm partitions DuckDB cannot read back (a corrupted block) or whose rows differ from the manifest
    (``full``: also the SHA-256 of their canonical encoding). A batch of partitions per connection, each
    partition read on its own, so memory holds one batch, not the whole tier."""
    found: list[Damage] = []
    for offset in range(0, len(partitions), WARM_BATCH):
        found += _check_warm_batch(lake, spec, partitions[offset: offset + WARM_BATCH], full)
    return found


#: Warm partitions read per connection by ``check_warm`` (a day of minute bars is ~1,440 rows).
WARM_BATCH = 64


def _check_warm_batch(lake: Lake, spec: DatasetSpec, partitions: list[Partition], full: bool) -> list[Damage]:
    warm = lake.warm
    catalogue = warm.manifests(spec)  # before connecting (POSIX locks, see LakeClient.read)
    found: list[Damage] = []
    uri = str(warm.path)
    try:
        frames = _read_each(warm, spec, partitions)
    except LakeStorageError as exc:  # the file does not open at all
        return [Damage(spec.name, p, Tier.WARM.value, uri, str(exc).splitlines()[0][:200]) for p in partitions]
    for p, result in zip(partitions, frames):
        manifest = catalogue.get(p)
        if isinstance(result, Exception):
            found.append(Damage(spec.name, p, Tier.WARM.value, uri, f"unreadable: {str(result).splitlines()[0][:200]}"))
        elif manifest is None:
            found.append(Damage(spec.name, p, Tier.WARM.value, uri, "no manifest row"))
        elif result.height != manifest["rows"]:
            found.append(Damage(spec.name, p, Tier.WARM.value, uri, f"{result.height:,} rows, the manifest says {manifest['rows']:,}"))
        elif full and sha256(encode_parquet(result)) != manifest["sha256"]:
            found.append(Damage(spec.name, p, Tier.WARM.value, uri, "rows differ from the manifest's SHA-256"))
    return found


def _read_each(warm, spec: DatasetSpec, partitions: list[Partition]) -> list:
    """Each partition as ``WarmTier.read`` returns it, or the exception reading it raised."""
    import duckdb

    try:  # the common case, whole: one query per partition on one connection
        return list(warm.read_partitions(spec, partitions))
    except (duckdb.Error, LakeStorageError) as exc:
        if "cannot open" in str(exc):
            raise
    out: list = []
    for p in partitions:
        try:
            out.append(warm.read_partitions(spec, [p])[0])
        except (duckdb.Error, LakeStorageError) as exc:
            out.append(exc)
    return out


# --------------------------------------------------------------------------------------------
# The full pass: ``lake storage --verify`` and the scheduled check
# --------------------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    checked: int
    damaged: list[Damage]

    def as_dict(self) -> dict:
        return {"checked": self.checked, "damaged": [d.as_dict() for d in self.damaged]}


def verify_lake(lake: Lake, *, datasets: Iterable[str] | None = None, symbols: Iterable[str] | None = None,
                start: date | None = None, end: date | None = None,
                progress: Callable[[str], None] | None = None) -> VerifyReport:
    """Check every copy of every selected partition (each tier that holds one) against its manifest:
    SHA-256 and row count. Partitions without a date or symbol field are always included."""
    from lake_resources.lifecycle import inventory  # lifecycle imports storage; keep this module light

    names = sorted(DATASETS) if datasets is None else [dataset_spec(d).name for d in datasets]
    wanted = set(symbols) if symbols is not None else None
    checked, damaged = 0, []
    warm_error: str | None = None
    for name in names:
        spec = dataset_spec(name)
        try:
            inv = inventory(lake, spec)
        except Exception as exc:  # noqa: BLE001 - an unreadable warm catalogue is a finding, not a crash
            if warm_error is None:
                warm_error = str(exc).splitlines()[0][:200]
                damaged.append(Damage("(warm catalogue)", (), Tier.WARM.value, str(lake.warm.path),
                                      f"the warm file's partition list cannot be read: {warm_error}"))
            inv = inventory(lake, spec, tiers=(Tier.HOT, Tier.COLD))
        selected = {p: c for p, c in inv.items() if _selected(p, wanted, start, end)}
        warm_parts = sorted(p for p, copies in selected.items() if any(c.tier is Tier.WARM for c in copies))
        if warm_parts:
            damaged += check_warm(lake, spec, warm_parts, full=True)
            checked += len(warm_parts)
        for p, copies in sorted(selected.items()):
            for copy in copies:
                if copy.tier is Tier.WARM:
                    continue
                checked += 1
                uri = lake.cold.month_uri(spec, dict(p)["symbol"], copy.month) if copy.month else lake.tier(copy.tier).uri(spec, p)
                try:
                    ok, detail = lake.verify(spec, p, copy.tier)
                except Exception as exc:  # noqa: BLE001 - unreadable is damaged
                    ok, detail = False, f"unreadable: {str(exc).splitlines()[0][:200]}"
                if not ok:
                    damaged.append(Damage(name, p, copy.tier.value, uri, detail))
        if progress:
            progress(f"{name}: {len(selected)} partition(s) checked")
    return VerifyReport(checked, damaged)


def _selected(p: Partition, symbols: set[str] | None, start: date | None, end: date | None) -> bool:
    fields = dict(p)
    if symbols is not None and "symbol" in fields and fields["symbol"] not in symbols:
        return False
    if "date" in fields:
        d = date.fromisoformat(fields["date"])
        if (start and d < start) or (end and d > end):
            return False
    return True


def format_verify(report: VerifyReport) -> str:
    lines = [f"DAMAGED {d.describe()}" for d in report.damaged]
    lines.append(f"verified {report.checked:,} partition copies: {len(report.damaged)} damaged"
                 + (" (re-materialize them to repair)" if report.damaged else ", all match their manifests"))
    return "\n".join(lines)


def cli_verify(lake: Lake, args) -> int:
    """``lake storage --verify [--dataset D] [--symbols A,B] [--start DATE] [--end DATE] [--json]``:
    exit status 1 when any copy is damaged, each named on its own line."""
    from lake_resources.catalog.validation import parse_date, validate_symbol

    symbols = [validate_symbol(s) for s in args.symbols.split(",") if s.strip()] if getattr(args, "symbols", None) else None
    start = parse_date(args.start) if getattr(args, "start", None) else None
    end = parse_date(args.end) if getattr(args, "end", None) else None
    report = verify_lake(lake, datasets=[args.dataset] if getattr(args, "dataset", None) else None,
                         symbols=symbols, start=start, end=end)
    if getattr(args, "json", False):
        import json

        print(json.dumps(report.as_dict(), indent=1, default=str))
    else:
        print(format_verify(report))
    return 1 if report.damaged else 0

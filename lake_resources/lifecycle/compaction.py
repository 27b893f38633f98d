"""Cold compaction: the daily cold files of a closed month rewritten into one file per symbol-month,
checked day by day against its inputs before publishing; the daily files removed only afterwards."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone

import polars as pl

from lake_resources.catalog.datasets import DatasetSpec, Tier, dataset_spec, partition_label
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.lifecycle.copies import _date_of
from lake_resources.lifecycle.policy import LifecyclePolicy, Log, _human, _quiet, _step, load_policy, resolve_as_of
from lake_resources.storage import (
    Lake,
    LakeStorageError,
    MonthFile,
    day_bounds,
    encode_parquet,
    encode_parquet_days,
    is_compactable,
    prepare_frame,
    sha256,
)


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

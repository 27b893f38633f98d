"""The lake: every tier of one lake together (``Lake``), from settings. Storage paths are built here and
in the tiers, nowhere else."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lake_resources.catalog.datasets import (
    TIER_PREFERENCE,
    DatasetSpec,
    Partition,
    Tier,
    dataset_spec,
    partition_label,
    partition_path,
)
from lake_resources.catalog.validation import LakeValidationError, parse_date, validate_partition_value, validate_symbol
from lake_resources.settings import LakeSettings
from lake_resources.storage.atomic import TEMP_FILE_MIN_AGE_SECONDS, LocalArea, TempSweep
from lake_resources.storage.cold_record import ColdOutage, ColdRecord, unreachable_reason
from lake_resources.storage.encoding import encode_parquet, prepare_frame, sha256
from lake_resources.storage.layout import (
    ColdTierUnreachable,
    ColdTierUnreachableWarning,
    Damage,
    LakeStorageError,
    MonthFile,
    PartitionDamaged,
    PartitionInfo,
    PartitionNotFound,
    is_compactable,
)
from lake_resources.storage.locks import PartitionLocks
from lake_resources.storage.parquet_tier import ParquetTier
from lake_resources.storage.warm_tier import WarmTier, _is_corruption


# --------------------------------------------------------------------------------------------
# The lake: tiers together
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Located:
    partition: Partition
    tier: Tier
    month: str | None = None  # set when the day is served by the cold month file of this month (YYYY-MM)


class Lake:
    """All tiers of one lake, from settings. Storage paths are built here and nowhere else."""

    def __init__(self, settings: LakeSettings):
        self.settings = settings
        self.hot = ParquetTier(Tier.HOT, str(settings.hot_root))
        self.warm = WarmTier(settings.warm_path)
        if settings.cold_is_s3:
            from lake_resources.storage.s3 import polars_storage_options, s3_filesystem

            fs = s3_filesystem(settings)
            self.cold = ParquetTier(Tier.COLD, settings.cold_root, fs=fs,
                                    storage_options=None if isinstance(settings.s3_verify, str)
                                    else polars_storage_options(settings),
                                    label=f"cold tier ({settings.cold_root} at {settings.s3_endpoint})")
            self.raw = ParquetTier(Tier.COLD, settings.raw_root, fs=fs, label=f"raw zone ({settings.raw_root} at {settings.s3_endpoint})")
            self.cold.record = ColdRecord(settings.home_abs)
        else:
            self.cold = ParquetTier(Tier.COLD, settings.cold_root)
            self.raw = ParquetTier(Tier.COLD, settings.raw_root, label=f"raw zone ({settings.raw_root})")
        self.locks = PartitionLocks(settings.home_abs / "locks")
        # Written with write_atomic outside the tiers, so their leftovers are swept with the tiers' own.
        self.download_cache = LocalArea(settings.cache_root, f"download cache ({settings.cache_root})")
        self.landing = LocalArea(settings.landing_root, f"landing area ({settings.landing_root})")

    @classmethod
    def from_env(cls) -> Lake:
        return cls(LakeSettings.from_env())

    def tier(self, tier: Tier | str) -> ParquetTier | WarmTier:
        tier = Tier.parse(tier)
        return {Tier.HOT: self.hot, Tier.WARM: self.warm, Tier.COLD: self.cold}[tier]

    def ensure_bucket(self) -> None:
        """Create the cold bucket if it does not exist (embedded/local setups; MinIO compose does it too)."""
        if self.settings.cold_is_s3:
            fs = self.cold.fs
            try:
                if not fs.exists(self.settings.s3_bucket):
                    fs.mkdir(self.settings.s3_bucket)
            except PermissionError as exc:  # the server answered: these credentials may not do this
                raise LakeValidationError(
                    f"bucket {self.settings.s3_bucket!r} at {self.settings.s3_endpoint}: access denied ({exc}); "
                    "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                ) from exc

    def partition_lock(self, dataset: str | DatasetSpec, partitions: Iterable[Partition]):
        """Hold these partitions against every other writer, move and compaction on this host."""
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        return self.locks.hold(spec, partitions)

    # leftovers of interrupted writes ---------------------------------------------
    def _leftover_stores(self) -> tuple[ParquetTier | LocalArea, ...]:
        return (self.hot, self.cold, self.raw, self.download_cache, self.landing)

    def find_temp_files(self, min_age_seconds: float = TEMP_FILE_MIN_AGE_SECONDS, now: float | None = None,
                        local_only: bool = False) -> TempSweep:
        """Leftovers of interrupted writes in the hot and cold tiers, the raw zone, the download cache
        and the local landing area, stale or fresh (``local_only``: not those on S3, e.g. while it is down)."""
        if min_age_seconds < 0:
            raise LakeValidationError(f"min_age_seconds must be >= 0, got {min_age_seconds}")
        found = TempSweep(min_age_seconds)
        seen: set[str] = set()  # LAKE_LANDING may be set inside another area: count each leftover once
        for store in self._leftover_stores():
            if local_only and not getattr(store, "is_local", True):
                continue
            for temp in store.temp_files(now):
                if temp.uri not in seen:
                    seen.add(temp.uri)
                    (found.stale if temp.age_seconds > min_age_seconds else found.fresh).append(temp)
        return found

    def sweep_temp_files(self, min_age_seconds: float = TEMP_FILE_MIN_AGE_SECONDS, now: float | None = None,
                         dry_run: bool = False) -> TempSweep:
        """Remove the leftovers older than ``min_age_seconds`` (younger ones may be writes in progress).
        Only temp files and incomplete uploads are ever touched: never data, manifests or raw files."""
        found = self.find_temp_files(min_age_seconds, now)
        if not dry_run:
            stores = {store.label: store for store in self._leftover_stores()}
            for temp in found.stale:
                stores[temp.store].remove_temp_file(temp)
                found.removed.append(temp)
        return found

    # raw zone ----------------------------------------------------------------
    @staticmethod
    def raw_relpath(source: str, symbol: str, day: date | str, filename: str) -> str:
        """``{source}/symbol={SYMBOL}/date={YYYY-MM-DD}/{filename}``: every payload as received."""
        return "/".join([
            validate_partition_value(source),
            f"symbol={validate_symbol(symbol)}",
            f"date={parse_date(day).isoformat()}",
            validate_partition_value(filename),
        ])

    def put_raw(self, source: str, symbol: str, day: date | str, filename: str, data: bytes) -> str:
        return self.raw.put_file(self.raw_relpath(source, symbol, day, filename), data)

    def get_raw(self, source: str, symbol: str, day: date | str, filename: str) -> bytes | None:
        return self.raw.get_file(self.raw_relpath(source, symbol, day, filename))

    # writes ------------------------------------------------------------------
    def write(self, dataset: str | DatasetSpec, partition: Partition, df: pl.DataFrame,
              tier: Tier | str | None = None) -> PartitionInfo:
        """Replace one partition in ``tier`` (default: the dataset's home), then drop copies elsewhere."""
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        target = Tier.parse(tier) if tier is not None else spec.tier
        if tuple(f for f, _ in partition) != spec.partition_by:
            raise LakeValidationError(f"{spec.name} is partitioned by {spec.partition_by}, got {partition_label(partition)}")
        partition = spec.partition(**dict(partition))
        df = prepare_frame(spec, df)
        data = encode_parquet(df)
        store = self.tier(target)
        # Under the partition's lock: a move of this partition either finishes first (its copies are
        # then the ones removed below) or starts after this write (and moves the new version).
        with self.partition_lock(spec, [partition]):
            if isinstance(store, WarmTier):
                info = store.write(spec, partition, df, data)
            else:
                info = store.write_encoded(spec, partition, data, df)
            # A re-materialized partition must not leave an older copy in another tier.
            for other in TIER_PREFERENCE:
                if other != target and self._holds(other, spec, partition):
                    self.delete(spec, partition, other)
        return info

    def delete(self, dataset: str | DatasetSpec, partition: Partition, tier: Tier | str) -> None:
        """Remove every copy of a partition from one tier (in cold: its daily file and its day in a month file)."""
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        t = Tier.parse(tier)
        with self.partition_lock(spec, [partition]):
            self.tier(t).delete(spec, partition)
            if t is Tier.COLD:
                month_file = self.month_holding(spec, partition)
                if month_file is not None:
                    self.cold.drop_month_days(spec, month_file, [dict(partition)["date"]])

    def _holds(self, tier: Tier, spec: DatasetSpec, partition: Partition) -> bool:
        store = self.tier(tier)
        if isinstance(store, WarmTier):
            return store.path.exists() and store.manifest(spec, partition) is not None
        if store.exists(spec, partition):
            return True
        return tier is Tier.COLD and self.month_holding(spec, partition) is not None

    def month_holding(self, dataset: str | DatasetSpec, partition: Partition) -> MonthFile | None:
        """The cold month file listing this partition's date, if any (shadowed by any daily copy)."""
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        if not is_compactable(spec):
            return None
        fields = dict(partition)
        month_file = self.cold.month_file(spec, fields["symbol"], fields["date"][:7])
        return month_file if month_file is not None and fields["date"] in month_file.dates else None

    # catalogue ----------------------------------------------------------------
    def locate(self, dataset: str | DatasetSpec, symbols: Iterable[str] | None = None,
               start: date | None = None, end: date | None = None,
               tier: Tier | str | None = None, *, cold_outages: list[ColdOutage] | None = None) -> list[Located]:
        """Each partition once, in the fastest tier that holds it, pruned by symbol and date range.

        In the cold tier a daily file shadows the month file's copy of the same day. When the S3 cold
        tier is unreachable, the lake's ``ColdRecord`` plans the read: partitions it says only cold
        holds raise ``ColdTierUnreachable`` naming them; with none, hot and warm answer with a
        ``ColdTierUnreachableWarning``. A caller passing ``cold_outages`` gets the ``ColdOutage``
        appended instead (no error, no warning) and deals with it (``LakeClient.sql``'s tripwires)."""
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        symbols = list(symbols) if symbols is not None else None
        tiers = [Tier.parse(tier)] if tier is not None else list(TIER_PREFERENCE)
        chosen: dict[Partition, tuple[Tier, str | None]] = {}

        def wanted(p: Partition) -> bool:
            fields = dict(p)
            if "date" in fields:
                d = date.fromisoformat(fields["date"])
                if (start and d < start) or (end and d > end):
                    return False
            return symbols is None or "symbol" not in fields or fields["symbol"] in symbols

        def consider(p: Partition, t: Tier, month: str | None) -> None:
            if p not in chosen and wanted(p):
                chosen[p] = (t, month)

        days = (start, end) if start is not None and end is not None else None
        for t in tiers:
            if t is Tier.COLD:
                try:
                    daily, months = self.cold.catalogue(spec, symbols, days)
                except Exception as exc:
                    reason = unreachable_reason(exc) if self.cold.record is not None and tier is None else None
                    if reason is None:
                        raise
                    record = self.cold.record
                    outage = ColdOutage(spec.name, self.cold.label, reason, record.listed_at(spec, symbols),
                                        [p for p in record.held(spec) if wanted(p) and p not in chosen])
                    if cold_outages is not None:
                        cold_outages.append(outage)
                    elif outage.needed:
                        raise ColdTierUnreachable(outage.error()) from exc
                    else:
                        warnings.warn(outage.warning(), ColdTierUnreachableWarning, stacklevel=3)
                    continue
                if self.cold.record is not None:  # a live listing is the truth: the record follows it
                    self.cold.record.listed(spec, symbols, daily, months)
                for p in daily:
                    consider(p, t, None)
                for month_file in months:
                    for day in month_file.dates:
                        consider(spec.partition(symbol=month_file.symbol, date=day), t, month_file.month)
            elif t is Tier.WARM:  # its catalogue is cached in memory: no range hint needed
                for p in self.warm.list(spec, symbols):
                    consider(p, t, None)
            else:
                for p in self.tier(t).list(spec, symbols, days):
                    consider(p, t, None)
        return [Located(p, t, month) for p, (t, month) in sorted(chosen.items())]

    def find(self, dataset: str | DatasetSpec, partition: Partition) -> Tier | None:
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        for t in TIER_PREFERENCE:
            if self._holds(t, spec, partition):
                return t
        return None

    def read_partition(self, dataset: str | DatasetSpec, partition: Partition) -> pl.DataFrame:
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        t = self.find(spec, partition)
        if t is None:
            raise PartitionNotFound(
                f"{spec.name} {partition_label(partition)} is not stored in any tier (hot, warm, cold)"
            )
        return self.read_from(spec, partition, t)

    def read_from(self, dataset: str | DatasetSpec, partition: Partition, tier: Tier | str) -> pl.DataFrame:
        """A partition as stored in one tier (cold: the daily file, else its day in the month file)."""
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        t = Tier.parse(tier)
        uri = str(self.warm.path) if t is Tier.WARM else self.tier(t).uri(spec, partition)
        try:
            if t is Tier.COLD and not self.cold.exists(spec, partition):
                month_file = self.month_holding(spec, partition)
                if month_file is not None:
                    uri = month_file.uri
                    return self.cold.read_month_day(spec, month_file, dict(partition)["date"])
            return self.tier(t).read(spec, partition)
        except (LakeStorageError, LakeValidationError):
            raise  # not found, or storage unreachable: not damage
        except Exception as exc:  # noqa: BLE001 - the bytes were read but do not decode: a damaged copy
            if isinstance(exc, duckdb.Error) and not _is_corruption(exc):
                raise

            detail = f"unreadable: {str(exc).splitlines()[0][:200]}"
            raise PartitionDamaged([Damage(spec.name, partition, t.value, uri, detail)]) from exc

    def manifest(self, dataset: str | DatasetSpec, partition: Partition, tier: Tier | str) -> dict | None:
        """A partition's manifest in one tier; for a day served by a cold month file, that day's entry."""
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        t = Tier.parse(tier)
        found = self.tier(t).manifest(spec, partition)
        if found is None and t is Tier.COLD:
            month_file = self.month_holding(spec, partition)
            if month_file is not None:
                found = _month_day_manifest(spec, partition, month_file)
        return found

    def verify(self, dataset: str | DatasetSpec, partition: Partition, tier: Tier | str | None = None) -> tuple[bool, str]:
        """Does the stored partition match its manifest (row count and SHA-256)?"""
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        t = Tier.parse(tier) if tier else self.find(spec, partition)
        if t is None:
            return False, f"{spec.name} {partition_label(partition)} not found in any tier"
        store = self.tier(t)
        manifest = store.manifest(spec, partition)
        month_file = None
        if manifest is None and t is Tier.COLD:
            month_file = self.month_holding(spec, partition)
            if month_file is not None:
                manifest = _month_day_manifest(spec, partition, month_file)
        if manifest is None:
            return False, f"{spec.name} {partition_label(partition)} in {t.value} has no manifest"
        if isinstance(store, WarmTier) or month_file is not None:
            df = self.read_from(spec, partition, t)
            digest, rows = sha256(encode_parquet(df)), df.height
        else:
            data = store.read_bytes(spec, partition)
            try:
                rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
            except (pa.ArrowInvalid, OSError):
                rows = -1  # not a readable Parquet file at all
            digest = sha256(data)
        where = f"{t.value} month file {month_file.month}" if month_file is not None else t.value
        return _match_manifest(spec, partition, where, manifest, digest, rows)

    def read_stored(self, dataset: str | DatasetSpec, partition: Partition,
                    tier: Tier | str) -> tuple[pl.DataFrame, str | None]:
        """``read_from``, with the SHA-256 of the bytes read when the partition is a Parquet file of its own
        (hot, a cold daily file; None for warm rows and a day of a cold month file), for ``verify_read``."""
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        t = Tier.parse(tier)
        store = self.tier(t)
        if isinstance(store, WarmTier) or (t is Tier.COLD and not store.exists(spec, partition)):
            return self.read_from(spec, partition, t), None
        data = store.read_bytes(spec, partition)
        return pl.read_parquet(io.BytesIO(data)), sha256(data)

    def verify_read(self, dataset: str | DatasetSpec, partition: Partition, tier: Tier | str,
                    frame: pl.DataFrame, file_sha256: str | None = None) -> tuple[bool, str]:
        """``verify`` of a copy already read from ``tier`` (``frame`` and ``file_sha256`` as ``read_stored``
        returns them), so the partition is not read a second time; the same answer and detail."""
        spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
        t = Tier.parse(tier)
        manifest = self.manifest(spec, partition, t)
        if manifest is None:
            return False, f"{spec.name} {partition_label(partition)} in {t.value} has no manifest"
        digest = file_sha256 or sha256(encode_parquet(frame))
        where = f"{t.value} month file {manifest['month']}" if manifest.get("month") else t.value
        return _match_manifest(spec, partition, where, manifest, digest, frame.height)


def _match_manifest(spec: DatasetSpec, partition: Partition, where: str, manifest: dict, digest: str,
                    rows: int) -> tuple[bool, str]:
    """``verify``'s answer: does a copy (its SHA-256 and row count) match its manifest, or the previous
    version the manifest names (a write interrupted before replacing the data)?"""
    ok = digest == manifest["sha256"] and rows == manifest["rows"]
    detail = (f"{spec.name} {partition_label(partition)} in {where}: rows {rows} (manifest {manifest['rows']}), "
              f"sha256 {digest[:12]}… (manifest {manifest['sha256'][:12]}…)")
    if not ok and any(e["sha256"] == digest and e["rows"] == rows for e in manifest.get("superseded", [])):
        return True, detail + "; the data is the previous version (a write was interrupted before replacing it)"
    return ok, detail



def _month_day_manifest(spec: DatasetSpec, partition: Partition, month_file: MonthFile) -> dict:
    entry = month_file.dates[dict(partition)["date"]]
    return {
        "dataset": spec.name, "tier": Tier.COLD.value, "partition": partition_path(partition),
        "uri": month_file.uri, "month": month_file.month, **entry,
    }

"""The Parquet tiers (hot on a local disk, cold on a local disk or S3): partitions with their manifests,
the compacted cold month files, and the leftovers of interrupted uploads."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from lake_resources.catalog.datasets import (
    DATE_SYMBOL,
    DatasetSpec,
    Partition,
    Tier,
    parse_partition_path,
    partition_label,
    partition_path,
)
from lake_resources.catalog.validation import validate_symbol
from lake_resources.storage.atomic import TempFile, _local_temp_files, write_atomic
from lake_resources.storage.encoding import _schema_json, cast_to_schema, encode_parquet, sha256
from lake_resources.storage.layout import (
    DATA_FILE,
    MANIFEST_FILE,
    MONTH_FIELD,
    LakeStorageError,
    MonthFile,
    PartitionInfo,
    PartitionNotFound,
    _check_month,
    _now,
    _parse_month_path,
    _ts_range,
    day_bounds,
    is_compactable,
)

#: Up to this many symbol-days a local tier is probed file by file rather than walked (a stat each vs
#: a walk of every partition of the symbols).
MAX_PROBED_PARTITIONS = 2048


# --------------------------------------------------------------------------------------------
# Parquet tiers (hot, cold)
# --------------------------------------------------------------------------------------------
class ParquetTier:
    """Hive-layout Parquet on a local disk or an S3 bucket (fsspec)."""

    def __init__(self, tier: Tier, root: str, fs=None, storage_options: dict | None = None, label: str | None = None):
        self.tier = tier
        self.root = root.rstrip("/")
        self.is_local = fs is None
        self.fs = fs
        self.storage_options = storage_options
        self.label = label or f"{tier.value} tier ({self.root})"
        self.record = None  # the S3 cold tier's ColdRecord (cold_record.py), kept by every change made here

    # paths -------------------------------------------------------------------
    def dir_of(self, spec: DatasetSpec, partition: Partition) -> str:
        sub = partition_path(partition)
        return f"{self.root}/{spec.name}/{sub}" if sub else f"{self.root}/{spec.name}"

    def uri(self, spec: DatasetSpec, partition: Partition) -> str:
        return f"{self.dir_of(spec, partition)}/{DATA_FILE}"

    # writes ------------------------------------------------------------------
    def _put_atomic(self, path: str, data: bytes) -> None:
        if not self.is_local:
            # One PUT of the complete object: S3 never exposes a partial object.
            try:
                self.fs.pipe_file(path, data)
            except Exception as exc:  # noqa: BLE001 - re-raised with where it failed
                raise LakeStorageError(f"{self.label}: upload of {path} failed: {type(exc).__name__}: {exc}") from exc
            return
        try:
            write_atomic(path, data)
        except OSError as exc:
            what = "is full (no space left on device)" if exc.errno == 28 else f"write failed ({exc.strerror or exc})"
            raise LakeStorageError(f"{self.label} {what}: writing {path}; the previous version is unchanged") from exc

    def write(self, spec: DatasetSpec, partition: Partition, df: pl.DataFrame) -> PartitionInfo:
        data = encode_parquet(df)
        return self.write_encoded(spec, partition, data, df)

    def write_encoded(self, spec: DatasetSpec, partition: Partition, data: bytes, df: pl.DataFrame) -> PartitionInfo:
        lo, hi = _ts_range(spec, df)
        info = PartitionInfo(
            dataset=spec.name, tier=self.tier.value, partition=partition, rows=df.height,
            sha256=sha256(data), bytes=len(data), uri=self.uri(spec, partition),
            written_at=_now(), min_ts=lo, max_ts=hi,
        )
        manifest_path = f"{self.dir_of(spec, partition)}/{MANIFEST_FILE}"
        manifest = info.as_dict() | {"schema": _schema_json(df)}
        previous = self.manifest(spec, partition)
        if self.record is not None:  # before the upload: the record may over-claim, never miss a copy
            self.record.wrote_daily(spec, partition, df.columns)
        # The manifest goes first and names both versions, so a crash before, between or after the
        # data swap always leaves data that matches an entry of its manifest.
        staged = manifest | {"superseded": [_manifest_entry(previous)]} if previous else manifest
        self._put_atomic(manifest_path, json.dumps(staged, indent=1).encode())
        self._put_atomic(info.uri, data)
        if previous:
            self._put_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
        return info

    # leftovers of interrupted writes --------------------------------------------
    def temp_files(self, now: float | None = None) -> list[TempFile]:
        """Leftovers of interrupted atomic writes here. Local: hidden temp files (a write killed
        before its rename). S3: incomplete multipart uploads (s3fs uploads 100 MiB and more in parts;
        a killed upload leaves its parts stored, invisible to readers, until aborted)."""
        now = time.time() if now is None else now
        if self.is_local:
            return _local_temp_files(self.root, self.label, now)
        found: list[TempFile] = []
        bucket, prefix, _ = self.fs.split_path(self.root)
        try:
            for upload in self._paged("list_multipart_uploads", "Uploads", Bucket=bucket, Prefix=f"{prefix}/"):
                parts = self._paged("list_parts", "Parts", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                found.append(TempFile(self.label, f"s3://{bucket}/{upload['Key']}", sum(p["Size"] for p in parts),
                                      now - upload["Initiated"].timestamp(), upload["UploadId"]))
        except FileNotFoundError:
            pass  # no bucket yet, or an upload completed/aborted while listing
        except Exception as exc:  # noqa: BLE001 - re-raised naming the tier and endpoint
            raise LakeStorageError(f"{self.label}: listing incomplete uploads failed: {type(exc).__name__}: {exc}") from exc
        return found

    def _paged(self, operation: str, items: str, **params) -> list[dict]:
        """Every item of a paginated S3 listing (``list_multipart_uploads``, ``list_parts``)."""
        out: list[dict] = []
        markers = {"list_multipart_uploads": (("NextKeyMarker", "KeyMarker"), ("NextUploadIdMarker", "UploadIdMarker")),
                   "list_parts": (("NextPartNumberMarker", "PartNumberMarker"),)}[operation]
        while True:
            page = self.fs.call_s3(operation, **params)
            out += page.get(items, [])
            if not page.get("IsTruncated"):
                return out
            params |= {ask: page[got] for got, ask in markers if page.get(got) is not None}

    def remove_temp_file(self, temp: TempFile) -> None:
        """Delete a leftover (local temp file) or abort it (S3 multipart upload); gone already is fine."""
        try:
            if temp.upload_id is None:
                os.unlink(temp.uri)
            else:
                bucket, key, _ = self.fs.split_path(temp.uri)
                self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=temp.upload_id)
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001 - re-raised naming the tier and the leftover
            raise LakeStorageError(f"{self.label}: removing the leftover {temp.uri} failed: {type(exc).__name__}: {exc}") from exc

    def put_file(self, relative: str, data: bytes) -> str:
        """Store an opaque file (raw zone) atomically; returns its URI."""
        path = f"{self.root}/{relative}"
        self._put_atomic(path, data)
        return path

    def get_file(self, relative: str) -> bytes | None:
        path = f"{self.root}/{relative}"
        try:
            if self.is_local:
                with open(path, "rb") as fh:
                    return fh.read()
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - re-raised naming the tier, endpoint and file
            raise LakeStorageError(f"{self.label}: reading {path} failed: {type(exc).__name__}: {exc}") from exc

    # reads -------------------------------------------------------------------
    def manifest(self, spec: DatasetSpec, partition: Partition) -> dict | None:
        raw = self.get_file(f"{self.dir_of(spec, partition)[len(self.root) + 1:]}/{MANIFEST_FILE}")
        return json.loads(raw) if raw else None

    def exists(self, spec: DatasetSpec, partition: Partition) -> bool:
        path = self.uri(spec, partition)
        return os.path.exists(path) if self.is_local else self.fs.exists(path)

    def read_bytes(self, spec: DatasetSpec, partition: Partition) -> bytes:
        data = self.get_file(self.uri(spec, partition)[len(self.root) + 1:])
        if data is None:
            raise PartitionNotFound(f"{spec.name} {partition_label(partition)} is not in the {self.label}")
        return data

    def read(self, spec: DatasetSpec, partition: Partition) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(self.read_bytes(spec, partition)))

    def list(self, spec: DatasetSpec, symbols: Iterable[str] | None = None,
             days: tuple[date, date] | None = None) -> list[Partition]:
        """Partitions of a dataset held here (pruned to ``symbols`` when the dataset has a symbol field).

        ``days`` (first, last) is a hint: partitions outside it may be left out, never ones inside."""
        return self._layout(spec, symbols, days)[0]

    def catalogue(self, spec: DatasetSpec, symbols: Iterable[str] | None = None,
                  days: tuple[date, date] | None = None) -> tuple[list[Partition], list[MonthFile]]:
        """Daily partitions and compacted month files of a dataset, from one listing (``days`` as in ``list``)."""
        daily, months = self._layout(spec, symbols, days)
        return daily, self._month_files(spec, months)

    def _layout(self, spec: DatasetSpec, symbols: Iterable[str] | None = None,
                days: tuple[date, date] | None = None) -> tuple[list[Partition], list[tuple[str, str]]]:
        base = f"{self.root}/{spec.name}"
        symbols = list(symbols) if symbols is not None else None
        prefixes = [base]
        if symbols is not None and spec.partition_by[:1] == ("symbol",):
            prefixes = [f"{base}/symbol={s}" for s in symbols]
        paths = self._probe_data_files(spec, symbols, days)
        if paths is None:
            paths = [path for prefix in prefixes for path in self._find_data_files(prefix)]
        found: list[Partition] = []
        months: list[tuple[str, str]] = []
        compactable = is_compactable(spec)
        for path in paths:
            rel = path[len(base) + 1: -len(DATA_FILE) - 1] if spec.partition_by else ""
            try:
                found.append(parse_partition_path(spec, rel) if spec.partition_by else ())
                continue
            except ValueError:
                pass
            month = _parse_month_path(rel) if compactable else None
            if month is not None:
                months.append(month)
            # anything else is a stray file that is not a partition: not ours to read
        return sorted(set(found)), sorted(set(months))

    def _probe_data_files(self, spec: DatasetSpec, symbols: list[str] | None,
                          days: tuple[date, date] | None) -> list[str] | None:
        """On a local disk, the data files of a short symbol x date range by one ``stat`` each, so a read of
        an hour costs the same in a lake of years as in a lake of days. None: walk the directories instead
        (S3, where one listing is cheaper than many requests; no range; or a range too long to probe)."""
        if not self.is_local or days is None or symbols is None or spec.partition_by != DATE_SYMBOL:
            return None
        first, last = days
        dates = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        if len(dates) * len(symbols) > MAX_PROBED_PARTITIONS:
            return None
        candidates = [self.uri(spec, spec.partition(symbol=s, date=d.isoformat())) for s in symbols for d in dates]
        if is_compactable(spec):
            months = sorted({d.strftime("%Y-%m") for d in dates})
            candidates += [self.month_uri(spec, s, m) for s in symbols for m in months]
        return [path for path in candidates if os.path.isfile(path)]

    def manifests(self, spec: DatasetSpec, partitions: Iterable[Partition]) -> dict[Partition, dict]:
        """Manifests of many partitions at once (one batched request on S3); missing ones are left out."""
        paths = {f"{self.dir_of(spec, p)}/{MANIFEST_FILE}": p for p in partitions}
        raw = self._cat_many(list(paths))
        return {p: json.loads(raw[path]) for path, p in paths.items() if raw.get(path)}

    def _cat_many(self, paths: list[str]) -> dict[str, bytes]:
        if not paths:
            return {}
        if self.is_local:
            out = {}
            for path in paths:
                try:
                    with open(path, "rb") as fh:
                        out[path] = fh.read()
                except FileNotFoundError:
                    continue
            return out
        got = self.fs.cat(paths, on_error="omit")
        by_key = {k.removeprefix("s3://"): v for k, v in got.items() if isinstance(v, bytes)}
        return {p: by_key[p.removeprefix("s3://")] for p in paths if p.removeprefix("s3://") in by_key}

    # compacted month files ------------------------------------------------------
    def month_dir(self, spec: DatasetSpec, symbol: str, month: str) -> str:
        return f"{self.root}/{spec.name}/symbol={validate_symbol(symbol)}/{MONTH_FIELD}={_check_month(month)}"

    def month_uri(self, spec: DatasetSpec, symbol: str, month: str) -> str:
        return f"{self.month_dir(spec, symbol, month)}/{DATA_FILE}"

    def _month_files(self, spec: DatasetSpec, keys: Iterable[tuple[str, str]]) -> list[MonthFile]:
        paths = {f"{self.month_dir(spec, s, m)}/{MANIFEST_FILE}": (s, m) for s, m in keys}
        raw = self._cat_many(list(paths))
        out = []
        for path, (symbol, month) in paths.items():
            if raw.get(path):
                out.append(MonthFile(spec.name, symbol, month, self.month_uri(spec, symbol, month), json.loads(raw[path])))
        return out

    def month_file(self, spec: DatasetSpec, symbol: str, month: str) -> MonthFile | None:
        """The month file of a symbol-month when both its data and its manifest are present."""
        uri = self.month_uri(spec, symbol, month)
        if not (os.path.exists(uri) if self.is_local else self.fs.exists(uri)):
            return None
        found = self._month_files(spec, [(symbol, month)])
        return found[0] if found else None

    def write_month_data(self, spec: DatasetSpec, symbol: str, month: str, data: bytes) -> str:
        """Store a month file's data (atomic). It serves nothing until its manifest names its dates."""
        uri = self.month_uri(spec, symbol, month)
        self._put_atomic(uri, data)
        return uri

    def write_month_manifest(self, spec: DatasetSpec, symbol: str, month: str, manifest: dict) -> MonthFile:
        days = sorted(manifest.get("dates", {}))
        if self.record is not None:  # the days of either version, until the new manifest is in place
            self.record.wrote_month(spec, symbol, month, days, keep=True)
        self._put_atomic(f"{self.month_dir(spec, symbol, month)}/{MANIFEST_FILE}", json.dumps(manifest, indent=1).encode())
        if self.record is not None:
            self.record.wrote_month(spec, symbol, month, days)
        return MonthFile(spec.name, symbol, month, self.month_uri(spec, symbol, month), manifest)

    def read_month_bytes(self, month_file: MonthFile) -> bytes:
        data = self.get_file(month_file.uri[len(self.root) + 1:])
        if data is None:
            raise PartitionNotFound(f"{month_file.dataset} month file {month_file.symbol} {month_file.month} is not in the {self.label}")
        return data

    def read_month_day(self, spec: DatasetSpec, month_file: MonthFile, day: str, data: bytes | None = None) -> pl.DataFrame:
        """One day of a month file, with that day's own schema (so it re-encodes to the day's SHA-256)."""
        entry = month_file.dates.get(day)
        if entry is None:
            raise PartitionNotFound(f"{spec.name} symbol={month_file.symbol}, date={day} is not in month file {month_file.uri}")
        lo, hi = day_bounds(day)
        col = pl.col(spec.time_column)
        source = pl.scan_parquet(io.BytesIO(data)) if data is not None else self.scan([month_file.uri])
        df = source.filter((col >= lo) & (col < hi)).collect()
        schema = entry.get("schema")
        if schema:
            df = df.select([c for c in json.loads(schema) if c in df.columns])
        return cast_to_schema(df, schema)

    def drop_month_days(self, spec: DatasetSpec, month_file: MonthFile, days: Iterable[str]) -> MonthFile | None:
        """Stop serving ``days`` from a month file (manifest rewrite); remove the file when none are left."""
        days = set(days)
        remaining = {d: e for d, e in month_file.dates.items() if d not in days}
        if remaining == month_file.dates:
            return month_file
        if not remaining:
            self.delete_month(spec, month_file.symbol, month_file.month)
            return None
        manifest = month_file.manifest | {"dates": remaining}
        return self.write_month_manifest(spec, month_file.symbol, month_file.month, manifest)

    def delete_month(self, spec: DatasetSpec, symbol: str, month: str) -> None:
        """Data first (a manifest without data serves nothing), then the manifest."""
        directory = self.month_dir(spec, symbol, month)
        self._remove_files(spec, directory)
        if self.record is not None:
            self.record.deleted_month(spec, symbol, month)

    def _find_data_files(self, prefix: str) -> Iterator[str]:
        if self.is_local:
            if not os.path.isdir(prefix):
                return
            for dirpath, _dirs, files in os.walk(prefix):
                if DATA_FILE in files:
                    yield f"{dirpath}/{DATA_FILE}".replace(os.sep, "/")
            return
        try:
            paths = self.fs.find(prefix)
        except FileNotFoundError:
            return
        for p in paths:
            if p.endswith("/" + DATA_FILE):
                yield "s3://" + p if not p.startswith("s3://") else p

    def delete(self, spec: DatasetSpec, partition: Partition) -> None:
        """Remove a partition: data first (so it disappears at once), then its manifest."""
        self._remove_files(spec, self.dir_of(spec, partition))
        if self.record is not None:
            self.record.deleted_daily(spec, partition)

    def _remove_files(self, spec: DatasetSpec, directory: str) -> None:
        for name in (DATA_FILE, MANIFEST_FILE):
            path = f"{directory}/{name}"
            if self.is_local:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(path)
        if self.is_local:
            # Tidy empty directories up to the dataset root.
            d = Path(directory)
            stop = Path(self.root) / spec.name
            while d != stop and d.is_dir() and not any(d.iterdir()):
                d.rmdir()
                d = d.parent

    def scan(self, uris: Sequence[str]) -> pl.LazyFrame:
        if self.is_local or self.storage_options is not None:
            # glob=False: lake paths are literal (a LAKE_HOME like /x/g*b/lake must not read /x/glob/lake).
            return pl.scan_parquet(list(uris), storage_options=self.storage_options, hive_partitioning=False,
                                   glob=False)
        # polars' object store cannot take a private CA bundle; s3fs can, so read through it.
        import pyarrow.dataset as ds

        paths = [u.removeprefix("s3://") for u in uris]
        return pl.scan_pyarrow_dataset(ds.dataset(paths, filesystem=self.fs, format="parquet"))


def _manifest_entry(manifest: dict) -> dict:
    return {k: manifest.get(k) for k in ("rows", "sha256", "bytes", "written_at", "min_ts", "max_ts", "schema")}

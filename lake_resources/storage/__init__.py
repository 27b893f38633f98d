"""Tiered storage: hot (local Parquet), warm (DuckDB), cold (Parquet on S3/MinIO or a local dir).

Every stored partition is written atomically and records its row count and SHA-256:
- Parquet tiers: ``{root}/{dataset}/{field}={value}/.../part-0.parquet`` with a ``_manifest.json`` beside
  it, written first and naming both the new and the previous version's SHA-256; each file goes to a temp
  file in the same directory, fsynced and renamed (S3: one PUT of the complete object). The SHA-256 is
  that of the Parquet bytes, so after a crash the data matches one of the versions its manifest names.
- Warm tier: one DuckDB table per dataset; delete-then-insert of the partition and its manifest row
  (table ``_lake_partitions``) in one transaction. Its SHA-256 is that of the same canonical Parquet
  encoding of the rows, so a partition's checksum is the same in every tier and a move can verify it.
- Cold month files (written by lifecycle compaction): ``{cold}/{dataset}/symbol=X/month=YYYY-MM/part-0.parquet``
  with a ``_manifest.json`` listing the dates it serves (rows, SHA-256 and schema of each day). A day is
  read from the month file only when no daily partition of it exists in any tier (hot, warm, or a daily
  cold file not yet removed), so no row is ever read twice.
- A write killed mid-way leaves a hidden ``.{name}.tmp-{uuid}`` file (local) or an incomplete
  multipart upload (S3, objects of 100 MiB and more): never read, swept by ``Lake.sweep_temp_files``
  once older than ``TEMP_FILE_MIN_AGE_SECONDS``. Local files outside the tiers (the download cache,
  landing pulls, generated sample data) are written with the same ``write_atomic``; the sweep covers
  the download cache and the local landing area too.
- Replacing, deleting, moving or compacting a partition holds its lock (``PartitionLocks``), so
  these never interleave on the same partition.

Modules: ``layout`` (file names, errors, records), ``encoding`` (the one Parquet encoding, schemas),
``atomic`` (atomic writes, leftovers and their sweep), ``locks`` (partition locks), ``parquet_tier``,
``warm_tier`` and ``lake`` (the façade). Everything is re-exported here: import from ``lake_resources.storage``.
"""

from lake_resources.storage.atomic import (
    TEMP_FILE_MIN_AGE_SECONDS,
    LocalArea,
    TempFile,
    TempSweep,
    is_temp_name,
    temp_path_for,
    write_atomic,
)
from lake_resources.storage.encoding import (
    ROW_GROUP_ROWS,
    _column_encodings,
    cast_to_schema,
    encode_parquet,
    encode_parquet_days,
    prepare_frame,
    sha256,
)
from lake_resources.storage.lake import Lake, Located
from lake_resources.storage.layout import (
    DATA_FILE,
    MANIFEST_FILE,
    MANIFEST_TABLE,
    MONTH_FIELD,
    ColdTierUnreachable,
    ColdTierUnreachableWarning,
    LakeStorageError,
    MonthFile,
    PartitionInfo,
    PartitionNotFound,
    day_bounds,
    is_compactable,
)
from lake_resources.storage.locks import PARTITION_LOCK_FILES, PARTITION_LOCK_TIMEOUT_SECONDS, PartitionLocks
from lake_resources.storage.parquet_tier import MAX_PROBED_PARTITIONS, ParquetTier
from lake_resources.storage.warm_tier import WarmTier

__all__ = [
    "DATA_FILE", "MANIFEST_FILE", "MANIFEST_TABLE", "MAX_PROBED_PARTITIONS", "MONTH_FIELD", "PARTITION_LOCK_FILES",
    "PARTITION_LOCK_TIMEOUT_SECONDS", "ROW_GROUP_ROWS", "TEMP_FILE_MIN_AGE_SECONDS", "ColdTierUnreachable", "ColdTierUnreachableWarning", "Lake", "LakeStorageError",
    "LocalArea", "Located", "MonthFile", "ParquetTier", "PartitionInfo", "PartitionLocks", "PartitionNotFound",
    "TempFile", "TempSweep", "WarmTier", "_column_encodings", "cast_to_schema", "day_bounds", "encode_parquet",
    "encode_parquet_days", "is_compactable", "is_temp_name", "prepare_frame", "sha256", "temp_path_for",
    "write_atomic",
]

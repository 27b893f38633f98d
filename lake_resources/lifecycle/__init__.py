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

Modules: ``policy`` (policies, "now", the crash hook), ``copies`` (what is stored where), ``migration``
(moves), ``compaction`` (cold month files), ``report`` (storage health, ``lake migrate``/``lake storage``
output). Everything is re-exported here: import from ``lake_resources.lifecycle``.
"""

from lake_resources.lifecycle.compaction import CompactionResult, compact, compact_month, plan_compaction
from lake_resources.lifecycle.copies import Copy, authoritative, copies_of, inventory
from lake_resources.lifecycle.migration import (
    MigrationReport,
    Move,
    MoveRefused,
    MoveResult,
    Skip,
    downsampling_gap,
    hot_bytes,
    migrate,
    move_partition,
    plan_migration,
)
from lake_resources.lifecycle.policy import (
    AS_OF_ENV,
    DEFAULT_POLICY_DOC,
    KILL_ENV,
    POLICY_ENV,
    REPO_POLICY_FILE,
    TIER_ORDER,
    DatasetPolicy,
    LifecyclePolicy,
    Log,
    Stage,
    load_policy,
    parse_policy,
    parse_size,
    policy_path,
    resolve_as_of,
)
from lake_resources.lifecycle.report import (
    StorageReport,
    TierUsage,
    cli_migrate,
    cli_storage,
    format_storage,
    hot_disk,
    storage_report,
)

__all__ = [
    "AS_OF_ENV",
    "CompactionResult",
    "Copy",
    "DEFAULT_POLICY_DOC",
    "DatasetPolicy",
    "KILL_ENV",
    "LifecyclePolicy",
    "Log",
    "MigrationReport",
    "Move",
    "MoveRefused",
    "MoveResult",
    "POLICY_ENV",
    "REPO_POLICY_FILE",
    "Skip",
    "Stage",
    "StorageReport",
    "TIER_ORDER",
    "TierUsage",
    "authoritative",
    "cli_migrate",
    "cli_storage",
    "compact",
    "compact_month",
    "copies_of",
    "downsampling_gap",
    "format_storage",
    "hot_bytes",
    "hot_disk",
    "inventory",
    "load_policy",
    "migrate",
    "move_partition",
    "parse_policy",
    "parse_size",
    "plan_compaction",
    "plan_migration",
    "policy_path",
    "resolve_as_of",
    "storage_report",
]

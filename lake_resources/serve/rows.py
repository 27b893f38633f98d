"""Rows of one dataset as a stream of polars batches: the planning and reading behind ``GET …/rows``.

The read resolves partitions exactly as ``LakeClient.read`` does (same pruning, tier preference, time
filter and projection pushed into each scan: it builds each partition's scan with the client's own
``_read_located``) and then goes one partition at a time, in the client's order:

- hot and cold partitions stream in record batches from the Parquet scan (polars ``collect_batches``),
  so a 20-day tick read holds at most one batch of one partition in server memory;
- warm partitions (a day of bars, a run's trades: small) are read whole, each on its own short-lived
  read-only DuckDB connection, so a slow client never holds the warm file open (which would keep the
  single writer, the ingestion, waiting).

Pagination: a cursor names the partition and the row offset within it where the page starts, so a
page costs the same wherever it is, and rows ingested into other partitions between two pages neither
shift nor repeat rows. With a ``limit``, the partitions of the page are counted first (a metadata
read for an unfiltered Parquet partition) so the next cursor is known before the first byte is sent.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from lake_resources.catalog.datasets import DatasetSpec, Partition, dataset_spec, parse_partition_path, partition_path
from lake_resources.catalog.validation import LakeValidationError, time_bound
from lake_resources.client import LakeClient
from lake_resources.lifecycle.damage import quick_check
from lake_resources.serve.filters import parse_where
from lake_resources.storage import Located
from lake_resources.storage.layout import PartitionDamaged

#: The largest page a request may ask for (the whole result streams without a limit).
MAX_LIMIT = 1_000_000
BATCH_ROWS = 131_072


@dataclass
class RowsPlan:
    spec: DatasetSpec
    located: list[Located]
    t0: datetime | None
    t1: datetime | None
    columns: list[str] | None
    where: pl.Expr | None
    schema: pl.Schema
    skip: int = 0  # rows of located[0] already served by earlier pages
    limit: int | None = None
    fingerprint: str = ""
    next_cursor: str | None = None
    counted: dict = field(default_factory=dict)


def time_bounds(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    t0 = time_bound(start, end=False) if start else None
    t1 = time_bound(end, end=True) if end else None
    if t0 is not None and t1 is not None and t0 > t1:
        raise LakeValidationError(f"start {start} is after end {end}")
    return t0, t1


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def encode_cursor(partition: Partition, offset: int, fingerprint: str) -> str:
    raw = json.dumps({"p": partition_path(partition), "o": offset, "q": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(spec: DatasetSpec, cursor: str, fingerprint: str) -> tuple[Partition, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        partition = parse_partition_path(spec, data["p"]) if spec.partition_by else ()
        offset = int(data["o"])
        same = data["q"] == fingerprint
    except (ValueError, KeyError, TypeError, LakeValidationError):
        raise LakeValidationError("invalid cursor: pass the X-Lake-Next-Cursor of the previous page unchanged") from None
    if not same:
        raise LakeValidationError("cursor belongs to another query: keep dataset, symbols, start, end, columns, where "
                                  "and tier as on the first page")
    if offset < 0:
        raise LakeValidationError("invalid cursor: negative offset")
    return partition, offset


def partition_frame(client: LakeClient, plan: RowsPlan, loc: Located, *, project: bool = True) -> pl.LazyFrame:
    lf = client._read_located(plan.spec, [loc], plan.t0, plan.t1, None)
    if plan.where is not None:
        lf = lf.filter(plan.where)
    if project and plan.columns:
        lf = lf.select(plan.columns)
    return lf


def plan_rows(client: LakeClient, dataset: str, *, symbols: Sequence[str] | None, start: str | None,
              end: str | None, columns: Sequence[str] | None, where: str | None, limit: int | None,
              cursor: str | None, tier: str | None) -> RowsPlan:
    """Validate a rows request and resolve its partitions; ``LakeValidationError`` for any bad input."""
    spec = dataset_spec(dataset)
    t0, t1 = time_bounds(start, end)
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise LakeValidationError(f"limit must be between 1 and {MAX_LIMIT:,}, got {limit}; "
                                  "page with the cursor, or omit limit to stream everything")
    located = client.partitions(spec.name, symbols=symbols, start=start, end=end, tier=tier)
    cols = list(dict.fromkeys(columns)) if columns else None
    schema = pl.Schema()
    if located:
        try:
            schema = client._read_located(spec, located[:1], t0, t1, None).collect_schema()
        except Exception as exc:  # noqa: BLE001 - named when the partition's copy is damaged
            damaged = quick_check(client.lake, spec, located[:1])
            if damaged:
                raise PartitionDamaged(damaged, str(exc)) from exc
            raise
    if cols and located:
        unknown = [c for c in cols if c not in schema]
        if unknown:
            raise LakeValidationError(f"unknown column(s) {', '.join(unknown)} in {spec.name}; columns: {', '.join(schema)}")
    where_expr = parse_where(where, dict(schema)) if located else None
    plan = RowsPlan(spec, located, t0, t1, cols, where_expr, schema, limit=limit,
                    fingerprint=_fingerprint(spec.name, sorted(symbols or []), start, end, cols, where, tier))
    if cols:
        plan.schema = pl.Schema({c: schema[c] for c in cols}) if located else pl.Schema({c: pl.Null for c in cols})
    if cursor:
        part, offset = decode_cursor(spec, cursor, plan.fingerprint)
        plan.located = [l for l in located if l.partition >= part]
        plan.skip = offset if plan.located and plan.located[0].partition == part else 0
    if limit is not None:
        plan.next_cursor = _next_cursor(client, plan)
    return plan


def _count(client: LakeClient, plan: RowsPlan, loc: Located) -> int:
    if loc.partition not in plan.counted:
        lf = partition_frame(client, plan, loc, project=False)
        plan.counted[loc.partition] = lf.select(pl.len()).collect().item()
    return plan.counted[loc.partition]


def _next_cursor(client: LakeClient, plan: RowsPlan) -> str | None:
    """Where the page after this one starts; None when this page holds every remaining row."""
    need = plan.limit
    for i, loc in enumerate(plan.located):
        skip = plan.skip if i == 0 else 0
        available = max(_count(client, plan, loc) - skip, 0)
        if need <= 0:
            if available:
                return encode_cursor(loc.partition, skip, plan.fingerprint)
            continue
        if available > need:
            return encode_cursor(loc.partition, skip + need, plan.fingerprint)
        need -= available
    return None


def conform(df: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """A batch in the stream's schema (a partition written by an older version may differ slightly)."""
    if df.schema == schema:
        return df
    return df.select([pl.col(c).cast(t) if c in df.columns else pl.lit(None, t).alias(c) for c, t in schema.items()])


def iter_batches(client: LakeClient, plan: RowsPlan, guard=None) -> Iterator[pl.DataFrame]:
    """The page's rows, partition by partition, in batches of at most ``BATCH_ROWS`` rows. ``guard`` (a lock)
    is held while each partition's read is set up (a warm partition is read then), never while rows wait
    for the client."""
    guard = guard or contextlib.nullcontext()
    remaining = plan.limit
    for i, loc in enumerate(plan.located):
        if remaining is not None and remaining <= 0:
            return
        try:
            with guard:
                lf = partition_frame(client, plan, loc)
            skip = plan.skip if i == 0 else 0
            if skip or remaining is not None:
                lf = lf.slice(skip, remaining)
            for df in lf.collect_batches(chunk_size=BATCH_ROWS, lazy=True):
                if df.height:
                    if remaining is not None:
                        remaining -= df.height
                    yield conform(df, plan.schema)
        except (LakeValidationError, GeneratorExit):
            raise
        except Exception as exc:  # noqa: BLE001 - named when the partition's copy is damaged, as LakeClient.read does
            with guard:
                damaged = quick_check(client.lake, plan.spec, [loc])
            if damaged:
                raise PartitionDamaged(damaged, str(exc)) from exc
            raise

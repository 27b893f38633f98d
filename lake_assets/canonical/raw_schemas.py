"""pandera schemas of the raw index datasets (``raw_dukascopy``, ``raw_vendor``), registered beside the
canonical ones of ``lake_resources.catalog.schemas`` when this module is imported (``canonical.checks`` does)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from lake_assets.ingest.vendor import RAW_VENDOR_STATUSES
from lake_resources.catalog.schemas import SCHEMAS, SYMBOL_PATTERN
from lake_resources.sources.vendor import FEEDS
from lake_resources.transforms.ticks import TS_DTYPE


def _rule(name: str, expr: pl.Expr, error: str) -> pa.Check:
    return pa.Check(lambda data: data.lazyframe.select(expr.fill_null(True).alias(name)), name=name, error=error)


_SHA256 = pa.Check.str_matches(r"^[0-9a-f]{64}$")
RAW_DUKASCOPY_SCHEMA = pa.DataFrameSchema(
    {
        "ts": pa.Column(TS_DTYPE, nullable=False),
        "symbol": pa.Column(pl.Utf8, checks=[pa.Check.str_matches(SYMBOL_PATTERN)]),
        "hour": pa.Column(pl.Int8, checks=[pa.Check.in_range(0, 23)]),
        "status": pa.Column(pl.Utf8, checks=[pa.Check.isin(["present", "empty", "missing"])]),
        "bytes": pa.Column(pl.Int64, checks=[pa.Check.ge(0)]),
        "sha256": pa.Column(pl.Utf8, checks=[_SHA256], nullable=True),
        "source": pa.Column(pl.Utf8),
        # which feed the hour came from; partitions stored before the API feed lack it (= datafeed)
        "feed": pa.Column(pl.Utf8, checks=[pa.Check.isin(["api", "datafeed"])], required=False),
    },
    checks=[
        _rule("hour_matches_ts", pl.col("ts").dt.hour() == pl.col("hour"), "hour must be the hour of ts"),
        _rule("present_has_bytes", (pl.col("status") != "present") | (pl.col("bytes") > 0),
              "a present hour has a non-empty file"),
        _rule("sha256_unless_missing", (pl.col("status") == "missing") | pl.col("sha256").is_not_null(),
              "present and empty hours carry the file's SHA-256"),
    ],
    strict=True,
    name="raw_dukascopy",
)
RAW_VENDOR_SCHEMA = pa.DataFrameSchema(
    {
        "ts": pa.Column(TS_DTYPE, nullable=False),
        "symbol": pa.Column(pl.Utf8, checks=[pa.Check.str_matches(SYMBOL_PATTERN)]),
        "vendor": pa.Column(pl.Utf8),
        "feed": pa.Column(pl.Utf8, checks=[pa.Check.isin(list(FEEDS))]),
        "pull_id": pa.Column(pl.Utf8),
        "location": pa.Column(pl.Utf8),
        "raw_file": pa.Column(pl.Utf8, nullable=True),
        "bytes": pa.Column(pl.Int64, checks=[pa.Check.ge(0)]),
        "stored_bytes": pa.Column(pl.Int64, checks=[pa.Check.ge(0)], nullable=True),
        "sha256": pa.Column(pl.Utf8, checks=[_SHA256], nullable=True),
        "status": pa.Column(pl.Utf8, checks=[pa.Check.isin(list(RAW_VENDOR_STATUSES))]),
        "records": pa.Column(pl.Int64, checks=[pa.Check.ge(0)]),
        "quarantined_records": pa.Column(pl.Int64, checks=[pa.Check.ge(0)]),
        "reason": pa.Column(pl.Utf8, nullable=True),
    },
    checks=[
        _rule("stored_unless_too_large", (pl.col("status") == "too_large") | pl.col("raw_file").is_not_null(),
              "every pull but a too-large one is kept in the raw zone"),
        _rule("reason_when_quarantined", (pl.col("status") == "ok") | pl.col("reason").is_not_null(),
              "a quarantined pull or record says why"),
    ],
    strict=True,
    name="raw_vendor",
)
# Registered beside the canonical schemas so validate_frame() knows every dataset; setdefault keeps
# a definition lake_resources.catalog.schemas may add later.
SCHEMAS.setdefault("raw_dukascopy", RAW_DUKASCOPY_SCHEMA)
SCHEMAS.setdefault("raw_vendor", RAW_VENDOR_SCHEMA)

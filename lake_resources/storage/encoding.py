"""The lake's one Parquet encoding (its bytes define a partition's SHA-256 in every tier) and the
schema record that lets a stored copy be read back with the types it was written with."""

from __future__ import annotations

import hashlib
import io
import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lake_resources.catalog.datasets import DatasetSpec

ROW_GROUP_ROWS = 128 * 1024


# --------------------------------------------------------------------------------------------
# Canonical encoding
# --------------------------------------------------------------------------------------------
def prepare_frame(spec: DatasetSpec, df: pl.DataFrame) -> pl.DataFrame:
    """Sort by time (stable: rows sharing a timestamp keep their order) so files are time-ordered."""
    if spec.time_column and spec.time_column in df.columns and not df[spec.time_column].is_sorted():
        df = df.sort(spec.time_column, maintain_order=True)
    return df


def _column_encodings(table: pa.Table) -> dict[str, str]:
    # Sorted timestamps delta-encode to ~3 bytes; prices repeat, so everything else stays dictionary
    # encoded. Measured on the real EURUSD day: 8.2 B/tick vs 13.3 with pyarrow defaults.
    return {f.name: "DELTA_BINARY_PACKED" for f in table.schema if pa.types.is_timestamp(f.type)}


def encode_parquet(df: pl.DataFrame) -> bytes:
    """The lake's one Parquet encoding: zstd, statistics on, row groups sized for time-range reads.

    Row groups are converted to Arrow and written one at a time, so the working memory is one row
    group, not a second copy of the frame (``to_arrow`` materialises polars' constant columns, e.g.
    a ticks frame's ``symbol``, as full string arrays). The bytes are exactly those of one
    ``pq.write_table`` of the whole table with ``row_group_size=ROW_GROUP_ROWS``, so checksums do not
    depend on how a frame was written. Dictionary (categorical) columns, whose row groups pyarrow
    writes differently when fed in pieces, take that one-call path.
    """
    empty = df.head(0).to_arrow()
    encodings = _column_encodings(empty)
    options = dict(
        compression="zstd",
        compression_level=3,
        write_statistics=True,
        use_dictionary=[c for c in empty.column_names if c not in encodings],
        column_encoding=encodings or None,
    )
    sink = io.BytesIO()
    if df.height == 0 or any(pa.types.is_dictionary(f.type) for f in empty.schema):
        pq.write_table(df.to_arrow(), sink, row_group_size=ROW_GROUP_ROWS, **options)
        return sink.getvalue()
    with pq.ParquetWriter(sink, empty.schema, **options) as writer:
        for offset in range(0, df.height, ROW_GROUP_ROWS):
            writer.write_table(df.slice(offset, ROW_GROUP_ROWS).to_arrow(), row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_parquet_days(df: pl.DataFrame, time_column: str, *, compression_level: int, row_group_rows: int) -> bytes:
    """Several days in one file (cold month files): the canonical encoding at a higher zstd level, with
    every UTC day in its own row group(s), so a date or time-range read only touches its days' groups."""
    table = df.to_arrow()
    encodings = _column_encodings(table)
    sink = io.BytesIO()
    with pq.ParquetWriter(
        sink,
        table.schema,
        compression="zstd",
        compression_level=compression_level,
        write_statistics=True,
        use_dictionary=[c for c in table.column_names if c not in encodings],
        column_encoding=encodings or None,
    ) as writer:
        if df.height == 0:
            writer.write_table(table)
        else:
            runs = df.select(pl.col(time_column).dt.date().rle().struct.field("len")).to_series().to_list()
            offset = 0
            for length in runs:
                writer.write_table(table.slice(offset, length), row_group_size=row_group_rows)
                offset += length
    return sink.getvalue()


def _schema_json(df: pl.DataFrame) -> str:
    return json.dumps({name: str(dtype) for name, dtype in df.schema.items()})


_DTYPES = {
    "Float64": pl.Float64, "Float32": pl.Float32, "Int64": pl.Int64, "Int32": pl.Int32,
    "Int16": pl.Int16, "Int8": pl.Int8, "UInt32": pl.UInt32, "UInt64": pl.UInt64,
    "UInt16": pl.UInt16, "UInt8": pl.UInt8,
    "String": pl.String, "Boolean": pl.Boolean, "Date": pl.Date, "Binary": pl.Binary,
}


def _dtype_from_str(text: str) -> pl.DataType | None:
    if text in _DTYPES:
        return _DTYPES[text]
    if text.startswith("Datetime("):
        unit = "ns" if "'ns'" in text else "us" if "'us'" in text else "ms"
        tz = "UTC" if "UTC" in text else None
        return pl.Datetime(unit, tz)
    return None  # nested/other types: leave as read


def cast_to_schema(df: pl.DataFrame, schema_json: str | None) -> pl.DataFrame:
    if not schema_json:
        return df
    wanted = json.loads(schema_json)
    exprs = []
    for name in df.columns:
        dtype = _dtype_from_str(wanted.get(name, ""))
        if dtype is not None and df.schema[name] != dtype:
            if isinstance(dtype, pl.Datetime) and isinstance(df.schema[name], pl.Datetime):
                exprs.append(pl.col(name).dt.convert_time_zone(dtype.time_zone or "UTC").dt.cast_time_unit(dtype.time_unit).alias(name)
                             if dtype.time_zone else pl.col(name).dt.cast_time_unit(dtype.time_unit).alias(name))
            else:
                exprs.append(pl.col(name).cast(dtype).alias(name))
    return df.with_columns(exprs) if exprs else df

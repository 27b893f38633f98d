"""The canonical Parquet encoding: row groups written one at a time give exactly the bytes of one
whole-table write, so a partition's SHA-256 never depends on how the frame was built or written."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from lake_resources.sources.dukascopy import bi5
from lake_resources.storage import ROW_GROUP_ROWS, _column_encodings, encode_parquet
from lake_resources.transforms.ticks import TICK_SCHEMA, normalize_ticks


@pytest.fixture(scope="module")
def real_ticks(datafeed_dir) -> pl.DataFrame:
    """The real EURUSD day 2019-02-04 (136,741 ticks: two row groups)."""
    hours = [(datafeed_dir / bi5.hour_path("EURUSD", h)).read_bytes() for h in bi5.day_hours(date(2019, 2, 4))]
    return normalize_ticks(bi5.decode_day_ticks(hours, date(2019, 2, 4), 100000), "EURUSD")


def whole_table_write(df: pl.DataFrame) -> bytes:
    """The encoding as one ``pq.write_table`` call (how partitions were encoded before incremental writes)."""
    table = df.to_arrow()
    encodings = _column_encodings(table)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=3, write_statistics=True,
                   row_group_size=ROW_GROUP_ROWS, use_dictionary=[c for c in table.column_names if c not in encodings],
                   column_encoding=encodings or None)
    return sink.getvalue()


def _odd_columns(rows: int, *, categorical: bool = False) -> pl.DataFrame:
    """Nulls, lists, structs, dates, booleans (and a categorical, which pyarrow writes as a dictionary)."""
    base = pl.DataFrame({
        "n": [1, None, 3], "text": ["x", None, "zz"], "tags": [["a"], [], None], "day": [date(2019, 1, 1)] * 3,
        "flag": [True, False, None], "nested": [{"k": 1}, {"k": 2}, None],
    })
    if categorical:
        base = base.with_columns(kind=pl.Series(["u", "v", "u"], dtype=pl.Categorical))
    return base[np.arange(rows) % 3]


@pytest.mark.parametrize("name", ["real_day", "one_row_group_exactly", "empty", "odd_columns", "categorical"])
def test_encoding_equals_one_whole_table_write_and_reads_back(real_ticks, name):
    df = {
        "real_day": lambda: real_ticks,
        "one_row_group_exactly": lambda: real_ticks.head(ROW_GROUP_ROWS),
        "empty": lambda: pl.DataFrame(schema=TICK_SCHEMA),
        "odd_columns": lambda: _odd_columns(ROW_GROUP_ROWS + 3),
        "categorical": lambda: _odd_columns(ROW_GROUP_ROWS + 3, categorical=True),
    }[name]()
    data = encode_parquet(df)
    assert data == whole_table_write(df)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert meta.num_rows == df.height
    if df.height:
        assert meta.num_row_groups == -(-df.height // ROW_GROUP_ROWS)
    assert pl.read_parquet(io.BytesIO(data)).equals(df)


def test_encoding_does_not_depend_on_how_the_frame_is_chunked(real_ticks):
    pieces = [real_ticks.slice(offset, 10_000) for offset in range(0, real_ticks.height, 10_000)]
    chunked = pl.concat(pieces, rechunk=False)
    assert chunked.n_chunks() > 1
    assert encode_parquet(chunked) == encode_parquet(real_ticks) == encode_parquet(real_ticks.clone())

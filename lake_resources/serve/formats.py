"""Encoders turning a stream of polars batches into bytes, one chunk per batch.

``arrow``: the Arrow IPC stream format (``pyarrow.ipc.open_stream`` / ``pl.read_ipc_stream`` read it).
``parquet``: one row group per batch, footer at the end. ``csv``: a header, then rows.
``json``: JSON lines (one object per row; ``pl.read_ndjson`` reads it).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

MEDIA_TYPES = {
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv; charset=utf-8",
    "json": "application/x-ndjson",
}


class _Sink(io.RawIOBase):
    """A write-only file that hands over what was written since the last ``take`` (tell() keeps counting,
    so Parquet's footer offsets stay right)."""

    def __init__(self):
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        b = bytes(data)
        self._parts.append(b)
        self._pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _cast(table: pa.Table, target: pa.Schema) -> pa.Table:
    return table if table.schema == target else table.cast(target)


def _arrow_via_writer(batches: Iterable[pl.DataFrame], target: pa.Schema) -> Iterator[bytes]:
    sink = _Sink()
    with pa.ipc.new_stream(sink, target) as writer:
        yield sink.take()
        for df in batches:
            writer.write_table(_cast(df.to_arrow(), target))
            yield sink.take()
    yield sink.take()


def arrow_schema(schema: pl.Schema) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow().schema


def encode(batches: Iterable[pl.DataFrame], schema: pl.Schema, fmt: str) -> Iterator[bytes]:
    if fmt == "arrow":
        target = arrow_schema(schema)
        if any(pa.types.is_dictionary(f.type) for f in target):  # dictionaries need their own messages
            yield from _arrow_via_writer(batches, target)
            return
        # The IPC stream is its schema message, one message per record batch, then the end-of-stream
        # marker: each serialized by Arrow in C++ (a Python file sink costs ~4x more per batch).
        yield target.serialize().to_pybytes()
        for df in batches:
            for batch in _cast(df.to_arrow(), target).to_batches():
                yield memoryview(batch.serialize())
        yield _EOS
    elif fmt == "parquet":
        sink = _Sink()
        target = arrow_schema(schema)
        with pq.ParquetWriter(sink, target, compression="zstd") as writer:
            for df in batches:
                writer.write_table(_cast(df.to_arrow(), target))
                yield sink.take()
        yield sink.take()
    elif fmt == "csv":
        header = True
        for df in batches:
            yield df.write_csv(include_header=header).encode()
            header = False
        if header:
            yield pl.DataFrame(schema=schema).write_csv(include_header=True).encode()
    elif fmt == "json":
        for df in batches:
            if df.height:
                yield df.write_ndjson().encode()
    else:
        raise ValueError(fmt)

"""Vendor pulls as data: the feed names, ``RawPull`` (one pull as received), ``Quarantined`` and
``ParseResult`` (what a parse yields), and the zstd helpers pulls are kept with."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import polars as pl
import zstandard

FEEDS = ("bars", "greeks", "headlines")
DEFAULT_MAX_PULL_BYTES = 64 * 1024 * 1024
TS_DTYPE = pl.Datetime("ns", "UTC")
LINEAGE_COLUMNS = ("pull_id", "pulled_at")
#: Natural keys of each feed's rows: the same key in a later pull supersedes the earlier row.
FEED_KEYS = {
    "bars": ("symbol", "ts"),
    "greeks": ("symbol", "ts", "expiry", "strike", "right"),
    "headlines": ("symbol", "ts", "headline"),
}

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_VENDOR = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PULL_SUFFIXES = (".json.zst", ".json")
_NS_PER_S = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS_PER_S
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(?:(Z)|([+-])(\d{2}):?(\d{2}))$",
    re.IGNORECASE,
)


class PullTooLargeError(ValueError):
    """A pull (or its decompressed form) is larger than the configured limit."""


# --------------------------------------------------------------------------------------------- zstd


def compress_pull(payload: bytes, *, level: int = 10) -> bytes:
    """zstd-compress a raw pull for the raw zone (content size recorded in the frame header)."""
    return zstandard.ZstdCompressor(level=level).compress(payload)


def decompress_pull(payload: bytes, *, max_bytes: int | None = None) -> bytes:
    """Decompress a zstd pull; refuse (``PullTooLargeError``) output beyond ``max_bytes`` without
    ever holding more than ``max_bytes + 1`` bytes, so a decompression bomb costs nothing."""
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload), read_across_frames=True)
        with reader:
            if max_bytes is None:
                return reader.readall()
            out = bytearray()
            while len(out) <= max_bytes:
                chunk = reader.read(max_bytes + 1 - len(out))
                if not chunk:
                    break
                out += chunk
    except zstandard.ZstdError as exc:
        raise ValueError(f"corrupt zstd payload: {exc}") from None
    if len(out) > max_bytes:
        raise PullTooLargeError(f"decompressed payload exceeds the limit of {max_bytes} bytes")
    return bytes(out)


# --------------------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class RawPull:
    """One pull as stored, with where it came from."""

    vendor: str
    feed: str
    symbol: str
    day: date
    pull_id: str
    location: str  # URL/path it was read from (no credentials)
    payload: bytes = field(repr=False)  # JSON or zstd-compressed JSON, as stored
    size: int  # stored size in bytes
    truncated: bool = False  # payload holds only the first max_pull_bytes + 1 bytes (the pull is too large)


@dataclass(frozen=True)
class Quarantined:
    """A pull (``record_index`` None) or one record of it that could not be used, and why."""

    pull_id: str
    record_index: int | None
    reason: str
    location: str = ""


QUARANTINE_SCHEMA = {"pull_id": pl.Utf8, "location": pl.Utf8, "record_index": pl.Int64, "reason": pl.Utf8}


@dataclass
class ParseResult:
    feed: str
    frame: pl.DataFrame
    quarantine: list[Quarantined]

    def quarantine_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "pull_id": [q.pull_id for q in self.quarantine],
                "location": [q.location for q in self.quarantine],
                "record_index": [q.record_index for q in self.quarantine],
                "reason": [q.reason for q in self.quarantine],
            },
            schema=QUARANTINE_SCHEMA,
        )

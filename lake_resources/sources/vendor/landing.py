"""Building pulls and the landing layout (``make_pull``, ``pull_path``, ``write_pull``), and the vendor
connectors that read pulls back (``VendorConnector``, ``LandingDirVendor``)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from lake_resources.catalog.validation import (
    LakeValidationError,
    parse_date,
    validate_partition_value,
    validate_symbol,
)
from lake_resources.sources.dukascopy.datafeed import SourceError
from lake_resources.sources.vendor.feeds import _spec
from lake_resources.sources.vendor.parse import combine_results, parse_pull
from lake_resources.sources.vendor.records import (
    _PULL_SUFFIXES,
    _VENDOR,
    DEFAULT_MAX_PULL_BYTES,
    ParseResult,
    RawPull,
    compress_pull,
)
from lake_resources.storage import write_atomic

# ------------------------------------------------------------------------------- building and layout


def make_pull(
    vendor: str,
    feed: str,
    symbol: str,
    day: date | str,
    pulled_at: datetime,
    records: Sequence[Mapping[str, Any]],
    **extra: Any,
) -> bytes:
    """Serialise a pull envelope (``extra`` adds top-level keys, e.g. ``request={...}``)."""
    _spec(feed)
    if pulled_at.tzinfo is None:
        raise ValueError("pulled_at must be timezone-aware")
    envelope = {
        "vendor": vendor,
        "feed": feed,
        "symbol": validate_symbol(symbol),
        "date": parse_date(day).isoformat(),
        "pulled_at": pulled_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        **extra,
        "records": list(records),
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _validate_vendor(vendor: str) -> str:
    if not isinstance(vendor, str) or not _VENDOR.match(vendor):
        raise LakeValidationError(f"invalid vendor name {vendor!r}: lower-case letters, digits, '_' or '-'")
    return vendor


def partition_dir(vendor: str, feed: str, symbol: str, day: date | str) -> str:
    """Landing directory of one partition's pulls, relative to the landing root."""
    _spec(feed)
    return f"vendor/{_validate_vendor(vendor)}/{feed}/{parse_date(day).isoformat()}/{validate_symbol(symbol)}"


def pull_path(vendor: str, feed: str, symbol: str, day: date | str, pull_id: str, *, compressed: bool = False) -> str:
    """Landing path of one pull, relative to the landing root."""
    suffix = ".json.zst" if compressed else ".json"
    return f"{partition_dir(vendor, feed, symbol, day)}/{validate_partition_value(pull_id)}{suffix}"


def _filesystem(landing: str | Path, storage_options: Mapping[str, Any] | None):
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(landing), **dict(storage_options or {}))
    return fs, root.rstrip("/")


def write_pull(
    landing: str | Path,
    payload: bytes,
    *,
    vendor: str,
    feed: str,
    symbol: str,
    day: date | str,
    pull_id: str,
    compressed: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """Write a pull into the landing layout (atomically: readers never see half a file); returns its location."""
    from fsspec.implementations.local import LocalFileSystem

    fs, root = _filesystem(landing, storage_options)
    path = f"{root}/{pull_path(vendor, feed, symbol, day, pull_id, compressed=compressed)}"
    data = compress_pull(payload) if compressed else payload
    if isinstance(fs, LocalFileSystem):
        write_atomic(path, data)  # staged under a hidden name: the landing sensor skips it
        return str(Path(path))
    fs.pipe_file(path, data)  # an object-store PUT is atomic
    return _location(fs, path)


# ------------------------------------------------------------------------------------- connectors


class VendorConnector(ABC):
    """A vendor: ``fetch`` returns raw pulls, ``parse`` turns one into rows plus quarantine.

    Another vendor is one subclass implementing ``fetch``; override ``parse`` only if its pulls do not
    use the standard envelope.
    """

    vendor: str
    max_pull_bytes: int = DEFAULT_MAX_PULL_BYTES
    known_symbols: Collection[str] | None = None  # None: the instrument catalogue

    @abstractmethod
    def fetch(self, feed: str, symbol: str, day: date | str) -> list[RawPull]:
        """All pulls of one partition, oldest first."""

    def parse(
        self,
        feed: str,
        payload: bytes,
        *,
        pull_id: str = "<bytes>",
        location: str = "",
        day: date | str | None = None,
        symbol: str | None = None,
    ) -> ParseResult:
        return parse_pull(
            feed,
            payload,
            pull_id=pull_id,
            location=location,
            day=day,
            symbol=symbol,
            vendor=self.vendor,
            max_pull_bytes=self.max_pull_bytes,
            known_symbols=self.known_symbols,
        )

    def parse_pulls(self, feed: str, pulls: Iterable[RawPull]) -> ParseResult:
        """Parse fetched pulls against the partition each was filed under, and combine them."""
        return combine_results(
            feed,
            (
                self.parse(feed, p.payload, pull_id=p.pull_id, location=p.location, day=p.day, symbol=p.symbol)
                for p in pulls
            ),
        )


class LandingDirVendor(VendorConnector):
    """Pulls dropped into the landing layout (see the module docstring), on local disk or any fsspec URL."""

    def __init__(
        self,
        landing: str | Path,
        vendor: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        max_pull_bytes: int = DEFAULT_MAX_PULL_BYTES,
        known_symbols: Collection[str] | None = None,
    ):
        if max_pull_bytes < 1:
            raise ValueError(f"max_pull_bytes must be >= 1, got {max_pull_bytes}")
        self.vendor = _validate_vendor(vendor)
        self.max_pull_bytes = max_pull_bytes
        self.known_symbols = known_symbols
        self._fs, self._root = _filesystem(landing, storage_options)

    def __repr__(self) -> str:
        return f"LandingDirVendor({_location(self._fs, self._root)!r}, {self.vendor!r})"

    def fetch(self, feed: str, symbol: str, day: date | str) -> list[RawPull]:
        _spec(feed)
        symbol, day = validate_symbol(symbol), parse_date(day)
        directory = f"{self._root}/{partition_dir(self.vendor, feed, symbol, day)}"
        where = _location(self._fs, directory)
        try:
            self._fs.invalidate_cache(directory)  # object-store listings are cached; new pulls must show up
            entries = self._fs.ls(directory, detail=True)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SourceError(f"{where}: cannot list pulls: {type(exc).__name__}: {exc}") from None
        files = sorted(
            (e for e in entries if e.get("type") == "file" and not _basename(e["name"]).startswith((".", "_"))),
            key=lambda e: e["name"],
        )
        pulls = []
        for entry in files:
            name = entry["name"]
            location = _location(self._fs, name)
            try:
                with self._fs.open(name, "rb") as fh:
                    data = fh.read(self.max_pull_bytes + 1)  # bounded: an enormous pull is quarantined, not loaded
            except OSError as exc:
                raise SourceError(f"{location}: cannot read pull: {type(exc).__name__}: {exc}") from None
            size = int(entry.get("size") or len(data))
            pulls.append(
                RawPull(
                    vendor=self.vendor,
                    feed=feed,
                    symbol=symbol,
                    day=day,
                    pull_id=_pull_id(_basename(name)),
                    location=location,
                    payload=data,
                    size=size,
                    truncated=len(data) > self.max_pull_bytes,
                )
            )
        return pulls


def _location(fs, path: str) -> str:
    from fsspec.implementations.local import LocalFileSystem

    return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _pull_id(filename: str) -> str:
    for suffix in _PULL_SUFFIXES:
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename

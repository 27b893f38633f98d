"""Vendor JSON pulls: captured raw (zstd) per symbol-day, then parsed into option greeks and headlines.

``raw_vendor`` reads every pull of a symbol-day from the landing area(s) through the vendor connector
(``LandingDirVendor``: the local landing directory, plus the shared landing, by default
``s3://{bucket}/{prefix}/landing`` when ``LAKE_S3_ENDPOINT`` is set), keeps each pull zstd-compressed in the raw zone and outputs an index of
them. It also parses each pull once, so refused pulls and records land in the ``quarantine`` dataset
(stage ``vendor``) with the reason, in one write per symbol-day; the rest of the partition proceeds.

``option_greeks`` and ``headlines`` (and the vendor side of ``bars_1m``) re-parse the stored raw pulls,
never the landing area, so they can be rebuilt from the raw zone alone. When several pulls carry the
same record (same natural key), the latest pull wins. Unknown vendor fields are kept as extra columns.
"""


import hashlib
import re
from collections.abc import Iterable
from datetime import datetime, timezone

import dagster as dg
import fsspec
import polars as pl

from lake_assets.metadata import daily_dataset_asset
from lake_assets.partitions import split_key
from lake_resources.catalog.datasets import Tier, dataset_spec
from lake_resources.catalog.validation import LakeValidationError, validate_partition_value
from lake_resources.dagster_io import LakeResource, PartitionInputs, PartitionStream
from lake_resources.settings import LakeSettings
from lake_resources.sources.dukascopy.ingest import QUARANTINE_SCHEMA
from lake_resources.sources.vendor import (
    FEEDS,
    LandingDirVendor,
    ParseResult,
    Quarantined,
    combine_results,
    compress_pull,
    empty_frame,
    latest_pull_rows,
    parse_pull,
)
from lake_resources.storage import Lake, LakeStorageError, PartitionNotFound
from lake_resources.transforms.bars import empty_bars, uniform_bars

RAW_SOURCE = "vendor"  # raw zone: raw/vendor/symbol=S/date=D/{vendor}.{feed}.{pull_id}.json.zst
QUARANTINE_STAGE = "vendor"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # first bytes of every zstd frame

RAW_VENDOR_SCHEMA = {
    "ts": pl.Datetime("ns", "UTC"),  # start of the UTC day the pull covers (the partition day)
    "symbol": pl.String,
    "vendor": pl.String,
    "feed": pl.String,
    "pull_id": pl.String,
    "location": pl.String,  # where it was read from (landing path or URL, no credentials)
    "raw_file": pl.String,  # path in the raw zone; null when the pull was not stored (too large)
    "bytes": pl.Int64,  # size as received
    "stored_bytes": pl.Int64,  # zstd size in the raw zone
    "sha256": pl.String,  # of the payload as received
    "status": pl.String,  # ok | partial (some records quarantined) | quarantined (whole pull) | too_large
    "records": pl.Int64,  # rows the pull parsed into
    "quarantined_records": pl.Int64,
    "reason": pl.String,  # first quarantine reason, if any
}
RAW_VENDOR_STATUSES = ("ok", "partial", "quarantined", "too_large")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")
_DOTS = re.compile(r"\.{2,}")
_MAX_RAW_NAME = 128  # what validate_partition_value accepts for one path segment
_RAW_SUFFIX = ".json.zst"


# ------------------------------------------------------------------------------------------
# Landing areas and connectors (plain functions: the sensor uses them too)
# ------------------------------------------------------------------------------------------
def landing_locations(settings: LakeSettings) -> list[tuple[str, dict | None]]:
    """``(url, storage_options)`` of each landing area: ``LAKE_LANDING``, plus ``LAKE_SHARED_LANDING`` if any."""
    places: list[tuple[str, dict | None]] = [(str(settings.landing_root), None)]
    shared = settings.shared_landing_location
    if shared is not None and shared.startswith("s3://"):
        from lake_resources.storage.s3 import s3fs_kwargs

        places.append((shared, s3fs_kwargs(settings)))
    elif shared is not None:
        places.append((shared, None))
    return places


def landing_vendors(url: str, storage_options: dict | None = None) -> list[str]:
    """Vendor names present in a landing area (``{landing}/vendor/{vendor}/``)."""
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    base = f"{root.rstrip('/')}/vendor"
    try:
        fs.invalidate_cache(base)
        entries = fs.ls(base, detail=True)
    except FileNotFoundError:
        return []
    return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory")


def vendor_connectors(settings: LakeSettings, log=None) -> list[LandingDirVendor]:
    """One connector per (landing area, vendor) found there."""
    connectors = []
    for url, options in landing_locations(settings):
        for vendor in landing_vendors(url, options):
            try:
                connectors.append(LandingDirVendor(url, vendor, storage_options=options))
            except LakeValidationError as exc:
                if log is not None:
                    log.warning(f"landing {url}: skipping vendor directory {vendor!r}: {exc}")
    return connectors


# ------------------------------------------------------------------------------------------
# Capture: landing -> raw zone + index + quarantine
# ------------------------------------------------------------------------------------------
def _day_start(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)


def raw_filename(vendor: str, feed: str, pull_id: str, sha256: str, *, hashed: bool = False) -> str:
    """``{vendor}.{feed}.{pull_id}.json.zst``, always a valid raw-zone name (``validate_partition_value``:
    at most 128 characters of ``[A-Za-z0-9._=-]``, no ``..``) for any vendor name the landing accepts.

    A pull id that is unsafe as a file name, or too long to fit, becomes a sanitised prefix of it plus
    ``-`` and the first 12 hex digits of the pull's SHA-256 (``hashed``: always so, to keep two
    different pulls with one id apart).
    """
    head = f"{vendor}.{feed}."
    safe = _DOTS.sub("_", _UNSAFE.sub("_", pull_id)).strip("._-")
    room = _MAX_RAW_NAME - len(head) - len(_RAW_SUFFIX)
    if hashed or not safe or safe != pull_id or len(safe) > room:
        tag = f"-{sha256[:12]}"
        safe = (safe[: max(room - len(tag), 0)].rstrip("._-") or "pull")[: max(room - len(tag), 1)] + tag
    return validate_partition_value(f"{head}{safe}{_RAW_SUFFIX}")


def pull_id_problem(pull_id: str) -> str | None:
    """Why a landing file's pull id (its name without ``.json``/``.json.zst``) is refused, or None.

    Pull ids are what ``write_pull`` accepts (``validate_partition_value``); one with ``..``, or other
    characters, names no pull a vendor connector writes: the file is quarantined, not parsed.
    """
    try:
        validate_partition_value(pull_id)
    except LakeValidationError as exc:
        return f"landing file name: {exc}"
    return None


def capture_vendor_day(
    store: Lake, connectors: Iterable[LandingDirVendor], symbol: str, day: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep every pull of one symbol-day in the raw zone (zstd); return (index, quarantine) frames.

    Each pull is parsed once here so a pull that cannot be read, or a bad record in it, is
    quarantined with its reason; nothing stops the other pulls.
    """
    start = _day_start(day)
    index_rows: list[dict] = []
    quarantine_rows: list[dict] = []
    used: dict[str, str] = {}  # raw file name -> sha256, to keep two different pulls apart
    for connector in connectors:
        for feed in FEEDS:
            for pull in connector.fetch(feed, symbol, day):
                digest = hashlib.sha256(pull.payload).hexdigest()
                row = {"ts": start, "symbol": symbol, "vendor": pull.vendor, "feed": feed, "pull_id": pull.pull_id,
                       "location": pull.location, "raw_file": None, "bytes": pull.size, "stored_bytes": None,
                       "sha256": None if pull.truncated else digest, "records": 0, "quarantined_records": 0}
                where = f"{pull.vendor}/{feed} pull {pull.pull_id}"
                if pull.truncated:
                    reason = f"pull of {pull.size:,} bytes exceeds the limit of {connector.max_pull_bytes:,} bytes: not stored"
                    index_rows.append(row | {"status": "too_large", "reason": reason})
                    quarantine_rows.append({"ts": start, "stage": QUARANTINE_STAGE, "symbol": symbol,
                                            "source": pull.location, "record": None, "reason": reason, "detail": where})
                    continue
                name = raw_filename(pull.vendor, feed, pull.pull_id, digest)
                if used.get(name, digest) != digest:  # same pull id in two landing areas, different bytes
                    name = raw_filename(pull.vendor, feed, pull.pull_id, digest, hashed=True)
                used[name] = digest
                stored = pull.payload if pull.payload.startswith(ZSTD_MAGIC) else compress_pull(pull.payload)
                store.put_raw(RAW_SOURCE, symbol, day, name, stored)  # kept raw even when refused below
                relpath = store.raw_relpath(RAW_SOURCE, symbol, day, name)
                bad_name = pull_id_problem(pull.pull_id)
                if bad_name is not None:
                    parsed = ParseResult(feed, empty_frame(feed), [Quarantined(pull.pull_id, None, bad_name, pull.location)])
                else:
                    parsed = parse_pull(feed, pull.payload, pull_id=pull.pull_id, location=pull.location, day=day,
                                        symbol=symbol, vendor=pull.vendor, max_pull_bytes=connector.max_pull_bytes)
                whole = any(q.record_index is None for q in parsed.quarantine)
                status = "quarantined" if whole else "partial" if parsed.quarantine else "ok"
                index_rows.append(row | {
                    "raw_file": relpath, "stored_bytes": len(stored), "status": status,
                    "records": parsed.frame.height,
                    "quarantined_records": sum(q.record_index is not None for q in parsed.quarantine),
                    "reason": parsed.quarantine[0].reason if parsed.quarantine else None,
                })
                quarantine_rows += [
                    {"ts": start, "stage": QUARANTINE_STAGE, "symbol": symbol, "source": q.location or pull.location,
                     "record": q.record_index, "reason": q.reason, "detail": f"{where} (raw {relpath})"}
                    for q in parsed.quarantine
                ]
    return pl.DataFrame(index_rows, schema=RAW_VENDOR_SCHEMA), pl.DataFrame(quarantine_rows, schema=QUARANTINE_SCHEMA)


# ------------------------------------------------------------------------------------------
# Already captured? (the landing sensor runs only what raw_vendor does not hold as it is now)
# ------------------------------------------------------------------------------------------
#: (vendor, pull id, location, content): content is the SHA-256 of the pull as received, or for a pull
#: too large to store, its size (the only thing that decides how raw_vendor records it).
PullSignature = tuple[str, str, str, str]
#: Metadata of each raw_vendor partition's materialization: ``feed_digests`` of what it captured, so the
#: landing sensor can tell which feeds a capture changed (and so which datasets it made out of date).
FEED_DIGESTS_METADATA = "lake/feed_digests"


def _content(sha256: str | None, size: int) -> str:
    return sha256 if sha256 is not None else f"too_large:{size}"


def landing_signatures(connectors: Iterable[LandingDirVendor], symbol: str, day: str) -> dict[str, frozenset[PullSignature]]:
    """Per feed, the pulls of one symbol-day in the landing area(s), as ``capture_vendor_day`` would record them."""
    found: dict[str, set[PullSignature]] = {feed: set() for feed in FEEDS}
    for connector in connectors:
        for feed in FEEDS:
            for pull in connector.fetch(feed, symbol, day):
                digest = None if pull.truncated else hashlib.sha256(pull.payload).hexdigest()
                found[feed].add((pull.vendor, pull.pull_id, pull.location, _content(digest, pull.size)))
    return {feed: frozenset(pulls) for feed, pulls in found.items()}


def index_signatures(index: pl.DataFrame) -> dict[str, frozenset[PullSignature]]:
    """Per feed, the pulls a ``raw_vendor`` index records."""
    found: dict[str, set[PullSignature]] = {feed: set() for feed in FEEDS}
    for row in index.iter_rows(named=True):
        found.setdefault(row["feed"], set()).add(
            (row["vendor"], row["pull_id"], row["location"], _content(row["sha256"], row["bytes"])))
    return {feed: frozenset(pulls) for feed, pulls in found.items()}


def stored_vendor_index(store: Lake, symbol: str, day: str) -> pl.DataFrame | None:
    """The stored ``raw_vendor`` index of one symbol-day, or None when it was never captured.

    Looks in its Parquet tiers only (hot, its home, and cold): the landing sensor must never wait on
    the warm DuckDB file's write lock. A partition moved to warm by hand reads as not captured, which
    costs one idempotent run.
    """
    spec = dataset_spec("raw_vendor")
    partition = spec.partition(symbol=symbol, date=day)
    for tier in (Tier.HOT, Tier.COLD):
        if store.tier(tier).exists(spec, partition):
            try:
                return store.read_from(spec, partition, tier)
            except PartitionNotFound:  # moved by the lifecycle meanwhile: look in the next tier
                continue
    return None


def pulls_digest(pulls: Iterable[PullSignature]) -> str:
    """A short digest of one feed's pulls (as ``landing_signatures``/``index_signatures`` give them)."""
    return hashlib.sha256("\n".join("\t".join(p) for p in sorted(pulls)).encode()).hexdigest()[:16]


def feed_digests(index: pl.DataFrame) -> dict[str, str]:
    """Per feed, ``pulls_digest`` of the pulls a ``raw_vendor`` index records."""
    return {feed: pulls_digest(pulls) for feed, pulls in sorted(index_signatures(index).items())}


def feeds_to_capture(store: Lake, connectors: Iterable[LandingDirVendor], symbol: str,
                     day: str) -> tuple[list[str] | None, dict[str, str]]:
    """Feeds whose landing pulls differ (by content) from what ``raw_vendor`` holds for the symbol-day,
    and ``feed_digests`` of what it holds.

    ``([], …)``: everything in the landing is captured exactly as it is now; ``(None, {})``: never captured.
    """
    index = stored_vendor_index(store, symbol, day)
    if index is None:
        return None, {}
    landing, stored = landing_signatures(connectors, symbol, day), index_signatures(index)
    return sorted(feed for feed in FEEDS if landing[feed] != stored.get(feed, frozenset())), feed_digests(index)


def capture_and_store(context, store: Lake, connectors: list[LandingDirVendor], key: str, progress: str = "") -> pl.DataFrame:
    """Capture one symbol-day and write its vendor quarantine partition; returns the index frame."""
    day, symbol = split_key(key)
    index, quarantine = capture_vendor_day(store, connectors, symbol, day)
    store.write("quarantine", (("stage", QUARANTINE_STAGE), ("symbol", symbol), ("date", day)), quarantine)
    feeds = ", ".join(f"{n} {feed}" for feed, n in sorted(index["feed"].value_counts().iter_rows())) or "no pulls"
    context.log.info(f"{progress}{symbol} {day}: {feeds} from {len(connectors)} vendor landing(s)")
    if quarantine.height:
        context.log.warning(
            f"{symbol} {day}: quarantined {quarantine.height} vendor pull(s)/record(s): "
            + "; ".join(quarantine["reason"].unique(maintain_order=True).to_list()[:5])
        )
    return index


# ------------------------------------------------------------------------------------------
# Parse: raw zone -> canonical frames
# ------------------------------------------------------------------------------------------
def parse_stored_pulls(store: Lake, index: pl.DataFrame | None, feed: str) -> ParseResult:
    """Parse the stored pulls of one feed listed in a ``raw_vendor`` index (latest pull wins per key)."""
    if index is None or index.height == 0:
        return ParseResult(feed, empty_frame(feed), [])
    results = []
    stored = index.filter((pl.col("feed") == feed) & pl.col("raw_file").is_not_null())
    for row in stored.iter_rows(named=True):
        bad_name = pull_id_problem(row["pull_id"])
        if bad_name is not None:  # refused by raw_vendor for its name, whatever it holds
            results.append(ParseResult(feed, empty_frame(feed), [Quarantined(row["pull_id"], None, bad_name, row["location"])]))
            continue
        payload = store.raw.get_file(row["raw_file"])
        if payload is None:
            raise LakeStorageError(
                f"raw pull {row['raw_file']} listed in raw_vendor is missing from the {store.raw.label}; "
                "re-materialize raw_vendor for this partition"
            )
        day = row["ts"].date()
        results.append(parse_pull(feed, payload, pull_id=row["pull_id"], location=row["location"], day=day,
                                  symbol=row["symbol"], vendor=row["vendor"]))
    combined = combine_results(feed, results)
    frame = latest_pull_rows(combined.frame, feed) if combined.frame.height else combined.frame
    return ParseResult(feed, frame, combined.quarantine)


def vendor_minute_bars(store: Lake, index: pl.DataFrame | None) -> pl.DataFrame:
    """Vendor minute bars of one symbol-day in the bars contract (extra vendor columns kept)."""
    parsed = parse_stored_pulls(store, index, "bars")
    return uniform_bars(parsed.frame) if parsed.frame.height else empty_bars()


# ------------------------------------------------------------------------------------------
# Assets
# ------------------------------------------------------------------------------------------
@daily_dataset_asset("raw_vendor", "ingest", extra_kinds={"json"}, pool="warm_writer")  # pool: it writes the vendor quarantine (warm)
def raw_vendor(context: dg.AssetExecutionContext, lake: LakeResource) -> PartitionStream:
    """Capture each symbol-day's vendor JSON pulls (bars, option greeks, headlines) into the raw zone."""
    store = lake.lake()
    keys = context.partition_keys
    totals = {"pulls": 0, "quarantined_pulls": 0, "quarantined_records": 0}

    def produce():
        connectors = vendor_connectors(lake.settings(), context.log)
        for i, key in enumerate(keys, 1):
            index = capture_and_store(context, store, connectors, key, f"[{i}/{len(keys)}] ")
            context.add_asset_metadata({FEED_DIGESTS_METADATA: dg.MetadataValue.json(feed_digests(index))},
                                       partition_key=key)
            totals["pulls"] += index.height
            totals["quarantined_pulls"] += index.filter(pl.col("status").is_in(["quarantined", "too_large"])).height
            totals["quarantined_records"] += int(index["quarantined_records"].sum() or 0)
            yield key, index

    return PartitionStream(produce(), summary=lambda: dict(totals))


def _parsed_feed_asset(name: str, feed: str, what: str):
    @daily_dataset_asset(name, "canonical", ins={"raw_vendor": dg.AssetIn()}, pool="warm_writer")
    def _asset(context: dg.AssetExecutionContext, raw_vendor: PartitionInputs, lake: LakeResource) -> PartitionStream:
        store = lake.lake()
        totals = {"quarantined_records": 0}

        def produce():
            for i, (key, index) in enumerate(raw_vendor, 1):
                parsed = parse_stored_pulls(store, index, feed)
                totals["quarantined_records"] += len(parsed.quarantine)
                extras = [c for c in parsed.frame.columns if c not in empty_frame(feed).columns]
                context.log.info(
                    f"[{i}/{len(raw_vendor)}] {key}: {parsed.frame.height} {what} from "
                    f"{index.filter(pl.col('feed') == feed).height} pull(s)"
                    + (f"; {len(parsed.quarantine)} quarantined (see quarantine stage=vendor)" if parsed.quarantine else "")
                    + (f"; extra vendor columns kept: {', '.join(extras)}" if extras else "")
                )
                yield key, parsed.frame

        return PartitionStream(produce(), summary=lambda: dict(totals))

    return _asset


option_greeks = _parsed_feed_asset("option_greeks", "greeks", "option greeks")
headlines = _parsed_feed_asset("headlines", "headlines", "headlines")

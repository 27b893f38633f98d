"""The landing sensor: new or changed vendor files -> runs for exactly the affected symbol-days.

Each tick lists the landing area(s) (``LAKE_LANDING``, and ``LAKE_SHARED_LANDING``: by default the S3
landing beside the cold tier when ``LAKE_S3_ENDPOINT`` is set), groups the vendor files by partition
(``{date}|{SYMBOL}``) and fingerprints each feed of each group from its files' names, sizes and
modification times (S3: ETag). A partition whose fingerprints match those in the cursor is skipped
without reading anything. Any other partition is compared by content with what ``raw_vendor`` stored
for it (each pull's location and SHA-256), and each feed's datasets with the capture of its pulls:
when the lake already holds exactly these pulls and every dataset of their feeds was materialized
after they were captured (after ``lake demo``, with a lost cursor, or for a file touched but
unchanged) nothing runs. Otherwise one run is requested: for raw_vendor and the datasets of the feeds
whose pulls differ (not captured yet: the feeds whose fingerprints differ from the cursor's), plus
the datasets of any other feed left behind (missing or older than the capture of its pulls: a failed
or never-run downstream step; without raw_vendor when only those are behind). Its run key includes
the fingerprints (and, for datasets left behind, the capture they must follow), so the same state is
never run twice and a changed file gives a new key.

"Left behind" is decided from Dagster's materialization records, not the lake's manifests: the
downstream datasets live in the warm DuckDB file, which the sensor never opens (a writer holds its
lock; a tick must stay short), and a lifecycle move re-stamps a partition's ``written_at`` (a compacted
day has none), which would make up-to-date datasets look older than a raw_vendor partition moved
after them. A raw_vendor capture records per feed a digest of its pulls (``FEED_DIGESTS_METADATA``),
so a capture that changed only the headlines does not make the bars and greeks datasets look stale.
A partition this Dagster instance never recorded a raw_vendor capture of (a lake written by another
instance) is not second-guessed.

The cursor (JSON: partition -> feed -> fingerprint) is stored by Dagster, so it survives restarts.
Symbols outside the configured universe (``LAKE_SYMBOLS``) cannot be run; they are added to the
``discovered_symbols`` dynamic partitions and left out of the cursor, so their files run once the
symbol is configured.
"""


import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg
import fsspec

from lake_assets.ingest.vendor import FEED_DIGESTS_METADATA, feeds_to_capture, landing_locations, vendor_connectors
from lake_assets.partitions import date_symbol_partitions, discovered_symbols
from lake_resources.catalog.validation import LakeValidationError, parse_date, validate_symbol
from lake_resources.dagster_io import LakeResource
from lake_resources.sources.vendor import FEEDS

#: Assets a run refreshes for each feed that changed (raw_vendor captures all feeds of the day).
FEED_ASSETS: dict[str, tuple[str, ...]] = {
    "bars": ("raw_vendor", "bars_1m", "bars_5m", "bars_1h", "bars_1d"),
    "greeks": ("raw_vendor", "option_greeks"),
    "headlines": ("raw_vendor", "headlines"),
}
SENSOR_ASSETS = tuple(dict.fromkeys(a for assets in FEED_ASSETS.values() for a in assets))
#: At most this many new or changed partitions are compared with the lake (and run) per tick, so a tick
#: stays short even with a lost cursor over a large landing; the rest follow on the next ticks.
MAX_PARTITIONS_PER_TICK = 200
CURSOR_VERSION = 2
#: How many of a partition's latest raw_vendor captures are searched for when a feed's pulls were first
#: captured as they are now (beyond that, the oldest one looked at counts: at worst one extra run).
CAPTURE_HISTORY = 50


@dataclass(frozen=True)
class LandingFile:
    landing: str  # landing URL
    vendor: str
    feed: str
    day: str
    symbol: str
    name: str  # path relative to the landing root
    version: str  # size + mtime (local) or ETag/LastModified (S3)


def _version(info: dict) -> str:
    marker = info.get("ETag") or info.get("LastModified") or info.get("mtime") or info.get("created") or ""
    return f"{info.get('size')}:{marker}"


def scan_landing(url: str, storage_options: dict | None = None) -> tuple[list[LandingFile], list[str]]:
    """Vendor files of one landing area, and the paths it ignored (with why).

    Layout: ``{landing}/vendor/{vendor}/{feed}/{YYYY-MM-DD}/{SYMBOL}/{file}``; names starting with
    ``.`` or ``_`` are writes in progress and are skipped silently.
    """
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/")
    base = f"{root}/vendor"
    try:
        fs.invalidate_cache(base)
        found = fs.find(base, detail=True)
    except FileNotFoundError:
        return [], []
    files, ignored = [], []
    for path, info in sorted(found.items()):
        if info.get("type") == "directory":
            continue
        rel = path[len(root) + 1:] if path.startswith(root + "/") else path
        parts = rel.split("/")
        if parts[-1].startswith((".", "_")):
            continue
        if len(parts) != 6:
            ignored.append(f"{rel}: not vendor/{{vendor}}/{{feed}}/{{date}}/{{SYMBOL}}/{{file}}")
            continue
        _, vendor, feed, day, symbol, _name = parts
        if feed not in FEEDS:
            ignored.append(f"{rel}: unknown feed {feed!r} (expected one of {', '.join(FEEDS)})")
            continue
        try:
            day = parse_date(day).isoformat()
            symbol = validate_symbol(symbol)
        except LakeValidationError as exc:
            ignored.append(f"{rel}: {exc}")
            continue
        files.append(LandingFile(url, vendor, feed, day, symbol, rel, _version(info)))
    return files, ignored


def fingerprint(files: Iterable[LandingFile]) -> dict[str, str]:
    """Per feed, a short digest of its files' locations and versions."""
    lines: dict[str, list[str]] = {}
    for f in files:
        lines.setdefault(f.feed, []).append(f"{f.landing}\t{f.name}\t{f.version}")
    return {feed: hashlib.sha256("\n".join(sorted(v)).encode()).hexdigest()[:12] for feed, v in sorted(lines.items())}


def _state_digest(state: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]


def load_cursor(cursor: str | None) -> dict[str, dict[str, str]]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
        return {}
    return dict(data.get("partitions") or {})


def dump_cursor(seen: dict[str, dict[str, str]]) -> str:
    return json.dumps({"v": CURSOR_VERSION, "partitions": dict(sorted(seen.items()))}, separators=(",", ":"))


def run_key(partition_key: str, digest: str) -> str:
    return f"vendor-landing:{partition_key}:{digest}"


def _feed_digests(record) -> dict:
    value = record.asset_materialization.metadata.get(FEED_DIGESTS_METADATA)
    return value.value if value is not None and isinstance(value.value, dict) else {}


def captured_since(instance: dg.DagsterInstance, partition_key: str, digests: dict[str, str],
                   feeds: Iterable[str]) -> dict[str, int] | None:
    """Per feed, the storage id of the raw_vendor materialization since which its stored pulls are
    ``digests[feed]``: the newest capture, walked back while the feed's digest stays the same (a
    capture without digests, e.g. bars_1m's read-through, counts as changing every feed).

    None when this instance holds no raw_vendor materialization of the partition.
    """
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey("raw_vendor"), asset_partitions=[partition_key]), limit=CAPTURE_HISTORY,
    ).records  # newest first
    if not records:
        return None
    since = {}
    for feed in feeds:
        since[feed] = records[0].storage_id
        for record in records:
            if _feed_digests(record).get(feed) != digests.get(feed):
                break
            since[feed] = record.storage_id
    return since


def _materialized_after(instance: dg.DagsterInstance, asset: str, partition_key: str, storage_id: int) -> bool:
    return bool(instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey(asset), asset_partitions=[partition_key], after_storage_id=storage_id),
        limit=1,
    ).records)


def left_behind(instance: dg.DagsterInstance, partition_key: str, digests: dict[str, str],
                feeds: Iterable[str]) -> dict[str, tuple[int, list[str]]]:
    """Feeds whose datasets (besides raw_vendor) are missing or older than the capture of the feed's
    stored pulls: feed -> (that capture's storage id, the datasets to run).

    The datasets to run start with the feed's parser (bars_1m for the roll-ups), so a roll-up is
    never rebuilt without bars_1m's blocking checks running before it.
    """
    feeds = list(feeds)
    since = captured_since(instance, partition_key, digests, feeds) if feeds else None
    if since is None:
        return {}
    behind = {}
    for feed in feeds:
        datasets = [a for a in FEED_ASSETS[feed] if a != "raw_vendor"]
        stale = [a for a in datasets if not _materialized_after(instance, a, partition_key, since[feed])]
        if stale:
            behind[feed] = (since[feed], list(dict.fromkeys([datasets[0], *stale])))
    return behind


@dg.sensor(
    name="vendor_landing_sensor",
    target=list(SENSOR_ASSETS),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New or changed vendor JSON pulls in the landing area(s) -> one run per affected symbol-day "
    "(raw_vendor and the datasets of the feeds that changed, or only the datasets a capture left behind); "
    "unknown symbols -> discovered_symbols.",
)
def vendor_landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    settings = lake.settings()
    files: list[LandingFile] = []
    for url, options in landing_locations(settings):
        try:
            found, ignored = scan_landing(url, options)
        except Exception as exc:  # noqa: BLE001 - a landing we cannot list fails the tick, cursor unchanged
            raise RuntimeError(settings.redact(f"cannot list landing {url}: {type(exc).__name__}: {exc}")) from exc
        files += found
        for why in ignored[:20]:
            context.log.warning(f"landing {url}: ignored {why}")

    by_partition: dict[tuple[str, str], list[LandingFile]] = {}
    for f in files:
        by_partition.setdefault((f.day, f.symbol), []).append(f)

    seen = load_cursor(context.cursor)
    configured = set(date_symbol_partitions.get_partitions_def_for_dimension("symbol").get_partition_keys())
    first_day = parse_date(settings.start_date)
    current: dict[str, dict[str, str]] = {}
    requests: list[dg.RunRequest] = []
    unknown: set[str] = set()
    deferred = captured = completed = compared = 0
    connectors = None  # listed once, only when some partition must be compared with the lake
    for (day, symbol), group in sorted(by_partition.items()):
        key = f"{day}|{symbol}"
        digest = fingerprint(group)  # feed -> digest
        if symbol not in configured:
            unknown.add(symbol)
            continue
        if parse_date(day) < first_day:
            context.log.warning(f"{key}: vendor files dated before LAKE_START_DATE {first_day}; not run")
            current[key] = digest
            continue
        if seen.get(key) == digest:
            current[key] = digest
            continue
        if not date_symbol_partitions.has_partition_key(key):  # e.g. a date in the future: retry later
            context.log.info(f"{key}: not a partition yet; will retry")
            continue
        if compared >= MAX_PARTITIONS_PER_TICK:
            deferred += 1
            if key in seen:
                current[key] = seen[key]
            continue
        compared += 1
        if connectors is None:
            connectors = vendor_connectors(settings, context.log)
        changed_feeds, stored = feeds_to_capture(lake.lake(), connectors, symbol, day)
        current[key] = digest
        behind: dict[str, tuple[int, list[str]]] = {}
        if changed_feeds is None:  # not captured yet: the feeds changed since the cursor (all, without one)
            before = seen.get(key, {})
            changed_feeds = sorted(f for f in set(digest) | set(before) if digest.get(f) != before.get(f))
        else:  # the feeds with pulls here and captured as they are: are their datasets up to date?
            behind = left_behind(context.instance, key, stored, [f for f in digest if f not in changed_feeds])
        if not changed_feeds and not behind:
            captured += 1
            continue
        assets = [a for feed in changed_feeds for a in FEED_ASSETS[feed]]
        assets += [a for _since, datasets in behind.values() for a in datasets]
        state = _state_digest(digest)
        if not changed_feeds:  # only datasets left behind: a key of their own, tied to the capture they follow
            completed += 1
            state += "-" + _state_digest({feed: f"{since}:{','.join(datasets)}" for feed, (since, datasets) in behind.items()})
        requests.append(dg.RunRequest(
            run_key=run_key(key, state),
            partition_key=key,
            asset_selection=[dg.AssetKey(a) for a in dict.fromkeys(assets)],
            tags={"lake/launched_by": "vendor_landing_sensor", "lake/vendor_files": str(len(group)),
                  "lake/vendor_feeds": ",".join(sorted({*changed_feeds, *behind}))},
        ))

    known = set(context.instance.get_dynamic_partitions(discovered_symbols.name)) if unknown else set()
    new_symbols = sorted(unknown - known)
    dynamic = [discovered_symbols.build_add_request(new_symbols)] if new_symbols else []
    if new_symbols:
        context.log.info(f"symbols not in LAKE_SYMBOLS, added to discovered_symbols: {', '.join(new_symbols)}")
    if captured:
        context.log.info(f"{captured} partition(s) already captured by raw_vendor with identical content: not run")
    if completed:
        context.log.info(f"{completed} partition(s) captured, but datasets of their feeds missing or older than "
                         "the capture: requested those datasets only")
    if deferred:
        context.log.info(f"{deferred} more partition(s) deferred to the next tick (limit {MAX_PARTITIONS_PER_TICK})")
    skip = None
    if not requests:
        skip = f"no new or changed vendor files ({len(files)} file(s) in {len(by_partition)} partition(s)"
        skip += f"; {captured} already captured with identical content)" if captured else ")"
    return dg.SensorResult(
        run_requests=requests or None,
        dynamic_partitions_requests=dynamic,
        cursor=dump_cursor(current),
        skip_reason=skip,
    )

"""The landing sensor: new or changed vendor files -> runs for exactly the affected symbol-days.

Each tick lists the landing area(s) (``LAKE_LANDING``, and ``LAKE_SHARED_LANDING``: by default the S3
landing beside the cold tier when ``LAKE_S3_ENDPOINT`` is set), groups the vendor files by partition
(``{date}|{SYMBOL}``) and fingerprints each feed of each group from its files' names, sizes and
modification times (S3: ETag). A partition whose fingerprints match those in the cursor is skipped
without reading anything. Any other partition is compared by content with what ``raw_vendor`` stored
for it (each pull's location and SHA-256): when the lake already holds exactly these pulls (after
``lake demo``, with a lost cursor, or for a file touched but unchanged) nothing runs. Otherwise one
run is requested, for raw_vendor and the datasets of the feeds whose pulls differ (not captured yet:
the feeds whose fingerprints differ from the cursor's), with a run key that includes the
fingerprints, so the same state of the files is never run twice and a changed file gives a new key.
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

from lake_assets.ingest.vendor import feeds_to_capture, landing_locations, vendor_connectors
from lake_assets.partitions import date_symbol_partitions, discovered_symbols
from lake_resources.resources import LakeResource
from lake_resources.sources.vendor import FEEDS
from lake_resources.validation import LakeValidationError, parse_date, validate_symbol

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


@dg.sensor(
    name="vendor_landing_sensor",
    target=list(SENSOR_ASSETS),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New or changed vendor JSON pulls in the landing area(s) -> one run per affected symbol-day "
    "(raw_vendor and the datasets of the feeds that changed); unknown symbols -> discovered_symbols.",
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
    deferred = captured = compared = 0
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
        changed_feeds = feeds_to_capture(lake.lake(), connectors, symbol, day)
        current[key] = digest
        if changed_feeds == []:
            captured += 1
            continue
        if changed_feeds is None:  # not captured yet: the feeds changed since the cursor (all, without one)
            before = seen.get(key, {})
            changed_feeds = sorted(f for f in set(digest) | set(before) if digest.get(f) != before.get(f))
        assets = list(dict.fromkeys(a for feed in changed_feeds for a in FEED_ASSETS[feed]))
        requests.append(dg.RunRequest(
            run_key=run_key(key, _state_digest(digest)),
            partition_key=key,
            asset_selection=[dg.AssetKey(a) for a in assets],
            tags={"lake/launched_by": "vendor_landing_sensor", "lake/vendor_files": str(len(group)),
                  "lake/vendor_feeds": ",".join(changed_feeds)},
        ))

    known = set(context.instance.get_dynamic_partitions(discovered_symbols.name)) if unknown else set()
    new_symbols = sorted(unknown - known)
    dynamic = [discovered_symbols.build_add_request(new_symbols)] if new_symbols else []
    if new_symbols:
        context.log.info(f"symbols not in LAKE_SYMBOLS, added to discovered_symbols: {', '.join(new_symbols)}")
    if captured:
        context.log.info(f"{captured} partition(s) already captured by raw_vendor with identical content: not run")
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

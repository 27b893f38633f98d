"""Parsing one pull: the envelope checked, each record parsed or quarantined alone, unknown fields kept
as extra columns; ``combine_results`` and ``latest_pull_rows`` over several pulls."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from lake_resources.catalog.instruments import catalogue
from lake_resources.catalog.validation import (
    LakeValidationError,
    parse_date,
    validate_symbol,
)
from lake_resources.sources.json_keys import DuplicateKeys, duplicate_keys, loads_marking_duplicates
from lake_resources.sources.vendor.feeds import (
    _Bad,
    _date,
    _FeedSpec,
    _format_ns,
    _json_type,
    _spec,
    core_schema,
    empty_frame,
    parse_ts_ns,
)
from lake_resources.sources.vendor.records import (
    _INT64_MAX,
    _INT64_MIN,
    _NS_PER_DAY,
    _ZSTD_MAGIC,
    DEFAULT_MAX_PULL_BYTES,
    FEED_KEYS,
    ParseResult,
    PullTooLargeError,
    Quarantined,
    decompress_pull,
)
from lake_resources.transforms import domain

# ---------------------------------------------------------------------------------------- parsing


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_envelope(payload: bytes, max_bytes: int) -> tuple[Any, bool]:
    """The parsed JSON, and whether any object in it repeated a key."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise _Bad(f"payload must be bytes, got {type(payload).__name__}")
    payload = bytes(payload)
    if len(payload) > max_bytes:
        raise _Bad(f"payload larger than the limit of {max_bytes} bytes")
    if payload.startswith(_ZSTD_MAGIC):
        try:
            payload = decompress_pull(payload, max_bytes=max_bytes)
        except PullTooLargeError:
            raise _Bad(f"zstd payload decompresses to more than the limit of {max_bytes} bytes") from None
        except ValueError as exc:
            raise _Bad(str(exc)) from None
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Bad(f"invalid UTF-8 at byte {exc.start}: {exc.reason}") from None
    try:
        return loads_marking_duplicates(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _Bad(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # NaN / Infinity
        raise _Bad(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise _Bad("invalid JSON: nested too deeply") from None


@dataclass(frozen=True)
class _PullContext:
    symbol: str
    day: date
    pulled_at_ns: int
    records: list[Any]
    duplicates: bool = False  # some object in the pull repeats a key: look for it in each record


def _envelope_field(envelope: dict[str, Any], key: str, kind: type) -> Any:
    if key not in envelope:
        raise _Bad(f"envelope: missing required field {key!r}")
    value = envelope[key]
    if not isinstance(value, kind):
        expected = "a list" if kind is list else "a string"
        raise _Bad(f"envelope field {key!r}: expected {expected}, got {_json_type(value)}")
    return value


def _check_envelope(
    envelope: Any,
    feed: str,
    *,
    day: date | None,
    symbol: str | None,
    vendor: str | None,
    known_symbols: Collection[str],
    duplicates: bool = False,
) -> _PullContext:
    if not isinstance(envelope, dict):
        raise _Bad(f"payload is a JSON {_json_type(envelope)}, expected an object (the pull envelope)")
    repeated = [] if not duplicates else duplicate_keys({k: v for k, v in envelope.items() if k != "records"})
    if isinstance(envelope, DuplicateKeys):
        repeated = list(dict.fromkeys([*envelope.duplicates, *repeated]))
    if repeated:
        raise _Bad(f"envelope: duplicate JSON key(s) {', '.join(map(repr, repeated))}: which value is meant cannot be told")
    got_vendor = _envelope_field(envelope, "vendor", str)
    got_feed = _envelope_field(envelope, "feed", str)
    got_symbol = _envelope_field(envelope, "symbol", str)
    got_date = _envelope_field(envelope, "date", str)
    got_pulled_at = _envelope_field(envelope, "pulled_at", str)
    records = _envelope_field(envelope, "records", list)
    if vendor is not None and got_vendor != vendor:
        raise _Bad(f"envelope vendor {got_vendor!r} does not match the connector's vendor {vendor!r}")
    if got_feed != feed:
        raise _Bad(f"envelope feed {got_feed!r} does not match the requested feed {feed!r}")
    try:
        pull_symbol = validate_symbol(got_symbol)
    except LakeValidationError as exc:
        raise _Bad(f"envelope field 'symbol': {exc}") from None
    if pull_symbol not in known_symbols:
        raise _Bad(f"symbol {pull_symbol!r} is not in the instrument catalogue")
    if symbol is not None and pull_symbol != symbol:
        raise _Bad(f"envelope symbol {pull_symbol!r} does not match the partition's symbol {symbol!r}")
    pull_day = _date(got_date, "date")
    if day is not None and pull_day != day:
        raise _Bad(f"envelope date {pull_day} does not match the partition's day {day}")
    pulled_at_ns = parse_ts_ns(got_pulled_at, "pulled_at")
    return _PullContext(pull_symbol, pull_day, pulled_at_ns, records, duplicates)


def _parse_record(record: Any, spec: _FeedSpec, ctx: _PullContext, day_start_ns: int) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(record, dict):
        raise _Bad(f"record is a JSON {_json_type(record)}, expected an object")
    repeated = duplicate_keys(record) if ctx.duplicates else []
    if repeated:
        raise _Bad(f"duplicate JSON key(s) {', '.join(map(repr, repeated))} in the record: which value is meant "
                   "cannot be told")
    row: dict[str, Any] = {}
    for f in spec.fields:
        if f.key not in record:
            if f.required:
                raise _Bad(f"missing required field {f.key!r}")
            row[f.out] = None
            continue
        value = record[f.key]
        if value is None:
            if not f.nullable:
                raise _Bad(f"field {f.key!r} is null")
            row[f.out] = None
        else:
            row[f.out] = f.convert(value, f.key)
    if spec.symbol_key is not None:
        if spec.symbol_key in record:
            got = record[spec.symbol_key]
            if not isinstance(got, str) or got.strip().upper() != ctx.symbol:
                raise _Bad(f"field {spec.symbol_key!r} {got!r} does not match the pull's symbol {ctx.symbol!r}")
        elif spec.symbol_required:
            raise _Bad(f"missing required field {spec.symbol_key!r}")
    if "symbols" in row and row["symbols"] is None:
        row["symbols"] = [ctx.symbol]
    ts = row["ts"]
    if not day_start_ns <= ts < day_start_ns + _NS_PER_DAY:
        raise _Bad(f"ts {_format_ns(ts)} is outside the pull's day {ctx.day}")
    reason = spec.check(row, ctx.day)
    if reason:
        raise _Bad(reason)
    known = {f.key for f in spec.fields} | ({spec.symbol_key} if spec.symbol_key else set())
    extras = {k: v for k, v in record.items() if k not in known}
    return row, extras


def _extra_series(name: str, values: list[Any]) -> pl.Series:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pl.Series(name, values, dtype=pl.Boolean)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    if present and numbers and all(isinstance(v, int) and _INT64_MIN <= v <= _INT64_MAX for v in present):
        return pl.Series(name, values, dtype=pl.Int64)
    if present and numbers:
        try:
            return pl.Series(name, [None if v is None else float(v) for v in values], dtype=pl.Float64)
        except OverflowError:
            pass
    text = [
        None if v is None else v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        for v in values
    ]
    return pl.Series(name, text, dtype=pl.Utf8)


def _build_frame(
    feed: str, rows: list[dict[str, Any]], extras: list[dict[str, Any]], symbol: str, pull_id: str, pulled_at_ns: int,
    indices: list[int] | None = None,
) -> pl.DataFrame:
    schema = core_schema(feed)
    n = len(rows)
    columns: list[pl.Series] = []
    for name, dtype in schema.items():
        if name == "ts":
            ns = pl.Series("ts", [r["ts"] for r in rows], dtype=pl.Int64)
            columns.append(ns.cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"))
        elif name == "symbol":
            columns.append(pl.Series("symbol", [symbol] * n, dtype=pl.Utf8))
        elif name == "pull_id":
            columns.append(pl.Series("pull_id", [pull_id] * n, dtype=pl.Utf8))
        elif name == "pulled_at":
            at = pl.Series("pulled_at", [pulled_at_ns] * n, dtype=pl.Int64)
            columns.append(at.cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"))
        else:
            columns.append(pl.Series(name, [r[name] for r in rows], dtype=dtype))
    taken = set(schema)
    extra_keys = list(dict.fromkeys(k for e in extras for k in e))
    for key in extra_keys:
        name = key
        while name in taken:  # never drop a vendor field: rename it out of the way
            name = f"vendor_{name}"
        taken.add(name)
        columns.append(_extra_series(name, [e.get(key) for e in extras]))
    if indices is not None:
        columns.append(pl.Series(_RECORD, indices, dtype=pl.Int64))
    return pl.DataFrame(columns).sort("ts", maintain_order=True)


_RECORD = "__lake_record"


def _refuse_implausible_bars(frame: pl.DataFrame, symbol: str) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """Split parsed bars (with their record numbers in ``_RECORD``) by the domain rules of
    ``transforms.domain``: minute alignment, one bar per minute, no price jump. Returns the good bars
    and ``(record number, reason)`` of the others."""
    rules: list[tuple[str | pl.Expr, pl.Expr]] = list(domain.minute_bar_rules())
    others_ok = ~pl.any_horizontal([bad for _, bad in rules])
    jump, jump_reason = domain.jump_rule(frame, ("open", "high", "low", "close"), level_of="close", symbol=symbol,
                                         valid=others_ok, one_symbol=True)
    rules.append((jump_reason, jump))
    if not frame.select(pl.any_horizontal([bad for _, bad in rules]).any()).item():
        return frame.drop(_RECORD), []
    reason = pl.concat_str([pl.when(bad).then(pl.lit(t) if isinstance(t, str) else t) for t, bad in rules],
                           separator="; ", ignore_nulls=True).alias("__lake_reason")
    tagged = frame.with_columns(reason)
    refused = tagged.filter(pl.col("__lake_reason") != "")
    good = tagged.filter(pl.col("__lake_reason") == "").drop(_RECORD, "__lake_reason")
    return good, list(refused.select(_RECORD, "__lake_reason").iter_rows())


def parse_pull(
    feed: str,
    payload: bytes,
    *,
    pull_id: str = "<bytes>",
    location: str = "",
    day: date | str | None = None,
    symbol: str | None = None,
    vendor: str | None = None,
    max_pull_bytes: int = DEFAULT_MAX_PULL_BYTES,
    known_symbols: Collection[str] | None = None,
) -> ParseResult:
    """Parse one pull (JSON, or zstd-compressed JSON) of ``feed`` into its frame plus a quarantine list.

    ``day``, ``symbol`` and ``vendor``, when given, are what the pull must declare (the partition it
    was filed under). ``known_symbols`` defaults to the instrument catalogue. Never raises for bad data;
    raises ``ValueError`` only for an unknown ``feed`` (a caller error).
    """
    spec = _spec(feed)
    expected_day = parse_date(day) if day is not None else None
    expected_symbol = validate_symbol(symbol) if symbol is not None else None
    known = catalogue().keys() if known_symbols is None else {validate_symbol(s) for s in known_symbols}
    try:
        envelope, duplicates = _load_envelope(payload, max_pull_bytes)
        ctx = _check_envelope(
            envelope, feed, day=expected_day, symbol=expected_symbol, vendor=vendor, known_symbols=known,
            duplicates=duplicates,
        )
        if feed == "bars" and len(ctx.records) > domain.MINUTES_PER_DAY:
            raise _Bad(f"{len(ctx.records):,} records: a day holds at most {domain.MINUTES_PER_DAY:,} minute bars")
    except _Bad as exc:
        return ParseResult(feed, empty_frame(feed), [Quarantined(pull_id, None, str(exc), location)])
    day_start_ns = parse_ts_ns(f"{ctx.day.isoformat()}T00:00:00Z")
    rows: list[dict[str, Any]] = []
    extras: list[dict[str, Any]] = []
    indices: list[int] = []
    quarantine: list[Quarantined] = []
    for index, record in enumerate(ctx.records):
        try:
            row, extra = _parse_record(record, spec, ctx, day_start_ns)
        except _Bad as exc:
            quarantine.append(Quarantined(pull_id, index, str(exc), location))
            continue
        rows.append(row)
        extras.append(extra)
        indices.append(index)
    bars = feed == "bars"
    frame = _build_frame(feed, rows, extras, ctx.symbol, pull_id, ctx.pulled_at_ns, indices if bars else None)
    if bars:
        frame, refused = _refuse_implausible_bars(frame, ctx.symbol)
        if refused:
            quarantine = sorted(quarantine + [Quarantined(pull_id, i, r, location) for i, r in refused],
                                key=lambda q: q.record_index)
    return ParseResult(feed, frame, quarantine)


def combine_results(feed: str, results: Iterable[ParseResult]) -> ParseResult:
    """Concatenate several pulls' results (extra columns that only some pulls have become null elsewhere)."""
    results = list(results)
    frames = [r.frame for r in results if r.frame.height]
    frame = pl.concat(frames, how="diagonal_relaxed").sort("ts", maintain_order=True) if frames else empty_frame(feed)
    return ParseResult(feed, frame, [q for r in results for q in r.quarantine])


def latest_pull_rows(frame: pl.DataFrame, feed: str) -> pl.DataFrame:
    """One row per natural key (``FEED_KEYS``): the row of the latest pull (by ``pulled_at``, then ``pull_id``)."""
    _spec(feed)
    keys = list(FEED_KEYS[feed])
    ordered = frame.with_row_index("_order").sort(["pulled_at", "pull_id", "_order"])
    return ordered.unique(subset=keys, keep="last").sort(["ts", "_order"]).drop("_order")

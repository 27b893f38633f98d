"""Vendor JSON pulls: the pull envelope, the landing layout, zstd helpers and per-feed parsers.

A *pull* is the JSON document one vendor-API request returned. Pulls are kept raw (zstd-compressed)
because vendor schemas change: the raw payload can always be replayed and re-parsed later. Parsing
never fails a partition: a pull that cannot be read is quarantined whole, a bad record inside a good
pull is quarantined alone, and the rest proceeds.

Pull envelope (one UTF-8 JSON object)::

    {
      "vendor": "sample",                   # vendor name, as in the landing path
      "feed": "bars",                       # "bars" | "greeks" | "headlines"
      "symbol": "AAPL",                     # catalogue symbol the pull was requested for
      "date": "2024-01-02",                 # the UTC day it covers (the partition day)
      "pulled_at": "2024-01-02T21:05:00Z",  # when it was pulled
      "records": [{...}, ...]               # feed records, below
    }

Other top-level keys (request parameters, a schema version, ...) are allowed; the parser ignores them
and the raw payload keeps them. Timestamps are ISO 8601 with a UTC offset (``Z`` or ``+hh:mm``), up to
nanosecond precision; a timestamp without an offset is an error, never a guess.

Records (``?`` = optional; every record's ``ts`` must fall on the pull's ``date``)::

    bars       ts (bar open), open, high, low, close, volume, vwap?, trades?,
               symbol? (if present, equal to the pull's symbol)
    greeks     ts, underlying (= the pull's symbol), expiry (YYYY-MM-DD), strike,
               right ("C"/"P", also "call"/"put"), iv, delta, gamma, theta, vega
               (these five may be null: not computable), rho?, underlying_price?, mark?, bid?, ask?,
               open_interest?, volume?, option_symbol?
    headlines  ts, headline, symbols? (list; default [the pull's symbol]), source?, sentiment? (-1..1),
               id?, url?

Parsed frames: ``ts`` (Datetime ns UTC), ``symbol``, the feed's fields (``underlying`` becomes
``symbol``; headline ``id`` becomes ``headline_id``; missing optional fields are null), then lineage
``pull_id``, ``pulled_at``, then every unknown record field as an extra column, never dropped: typed
Boolean / Int64 / Float64 / Utf8 when its values agree, otherwise Utf8 (objects and lists as JSON
text). An extra field whose name is taken by an output column is renamed ``vendor_<name>``.

Landing layout (local directory or any fsspec URL, e.g. ``s3://bucket/landing``)::

    {landing}/vendor/{vendor}/{feed}/{YYYY-MM-DD}/{SYMBOL}/{pull_id}.json      (or .json.zst)

Files whose names start with ``.`` or ``_`` are in-progress writes and are ignored; every other file in
a partition directory is a pull (so a stray file is quarantined, not skipped).
"""

from __future__ import annotations

import io
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
import zstandard

from lake_resources.instruments import catalogue
from lake_resources.sources.dukascopy import SourceError
from lake_resources.sources.json_keys import DuplicateKeys, duplicate_keys, loads_marking_duplicates
from lake_resources.storage import write_atomic
from lake_resources.transforms import domain
from lake_resources.validation import (
    LakeValidationError,
    parse_date,
    validate_partition_value,
    validate_symbol,
)

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


# ------------------------------------------------------------------------------------- feed schemas


class _Bad(ValueError):
    """A reason to quarantine (a pull or a record)."""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"field {key!r}: expected a number, got {_json_type(value)}")
    try:
        out = float(value)
    except OverflowError:
        raise _Bad(f"field {key!r}: number out of range") from None
    if not math.isfinite(out):
        raise _Bad(f"field {key!r}: number out of range")
    return out


def _int(value: Any, key: str) -> int:
    if isinstance(value, float) and value.is_integer():  # some vendors write counts as 12.0
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"field {key!r}: expected an integer, got {_json_type(value)} {value!r}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _Bad(f"field {key!r}: integer out of the 64-bit range")
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"field {key!r}: expected a string, got {_json_type(value)}")
    return value


def _id(value: Any, key: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _str(value, key)


def _date(value: Any, key: str) -> date:
    text = _str(value, key)
    try:
        return parse_date(text)
    except LakeValidationError:
        raise _Bad(f"field {key!r}: {text!r} is not a YYYY-MM-DD date") from None


def _right(value: Any, key: str) -> str:
    text = _str(value, key).strip().upper()
    if text in ("C", "CALL"):
        return "C"
    if text in ("P", "PUT"):
        return "P"
    raise _Bad(f"field {key!r}: {value!r} is not C/P (or call/put)")


def _symbols(value: Any, key: str) -> list[str]:
    if not isinstance(value, list):
        raise _Bad(f"field {key!r}: expected a list of symbols, got {_json_type(value)}")
    try:
        return [validate_symbol(_str(item, key)) for item in value]
    except LakeValidationError as exc:
        raise _Bad(f"field {key!r}: {exc}") from None


def parse_ts_ns(value: Any, key: str = "ts") -> int:
    """ISO 8601 timestamp with a UTC offset -> integer ns since the epoch (exact, no float)."""
    text = _str(value, key)
    match = _TS.match(text.strip())
    if not match:
        raise _Bad(f"field {key!r}: {text!r} is not an ISO 8601 timestamp with a UTC offset")
    year, month, day_, hour, minute = (int(match[i]) for i in range(1, 6))
    second = int(match[6] or 0)
    try:
        moment = datetime(year, month, day_, hour, minute, second, tzinfo=timezone.utc)
    except ValueError as exc:
        raise _Bad(f"field {key!r}: {text!r}: {exc}") from None
    offset_s = 0
    if not match[8]:
        offset_s = (int(match[10]) * 3600 + int(match[11]) * 60) * (1 if match[9] == "+" else -1)
    delta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds - offset_s
    return seconds * _NS_PER_S + int((match[7] or "").ljust(9, "0"))


def _format_ns(ns: int) -> str:
    seconds, rest = divmod(ns, _NS_PER_S)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{rest:09d}Z" if rest else f"{text}Z"


@dataclass(frozen=True)
class _Field:
    key: str  # name in the vendor record
    convert: Callable[[Any, str], Any]
    dtype: pl.DataType
    required: bool = True
    nullable: bool = False
    column: str | None = None  # output column (default: key)

    @property
    def out(self) -> str:
        return self.column or self.key


def _num(key: str, **kw: Any) -> _Field:
    return _Field(key, _float, pl.Float64(), **kw)


def _optional(f: _Field) -> _Field:
    return _Field(f.key, f.convert, f.dtype, required=False, nullable=True, column=f.column)


@dataclass(frozen=True)
class _FeedSpec:
    fields: tuple[_Field, ...]
    symbol_key: str | None  # record field that must equal the pull's symbol
    symbol_required: bool
    check: Callable[[dict[str, Any], date], str | None]  # a reason to quarantine the record, or None


def _check_bar(row: dict[str, Any], day: date) -> str | None:
    o, h, l, c = row["open"], row["high"], row["low"], row["close"]
    if min(o, h, l, c) <= 0:
        return "bar prices must be > 0"
    if l > min(o, c) or h < max(o, c):
        return f"inconsistent bar: low {l} / high {h} do not bracket open {o} and close {c}"
    if row["volume"] < 0:
        return f"negative volume {row['volume']}"
    if row["trades"] is not None and row["trades"] < 0:
        return f"negative trades {row['trades']}"
    if row["vwap"] is not None and row["vwap"] <= 0:
        return f"vwap must be > 0, got {row['vwap']}"
    return None


def _check_greek(row: dict[str, Any], day: date) -> str | None:
    if row["strike"] <= 0:
        return f"strike must be > 0, got {row['strike']}"
    if row["expiry"] < day:
        return f"expiry {row['expiry']} is before the pull's day {day}"
    if row["iv"] is not None and row["iv"] < 0:
        return f"negative implied volatility {row['iv']}"
    if row["delta"] is not None and not -1 <= row["delta"] <= 1:
        return f"delta {row['delta']} outside [-1, 1]"
    return None


def _check_headline(row: dict[str, Any], day: date) -> str | None:
    if not row["headline"].strip():
        return "empty headline"
    if row["sentiment"] is not None and not -1 <= row["sentiment"] <= 1:
        return f"sentiment {row['sentiment']} outside [-1, 1]"
    return None


_TS_FIELD = _Field("ts", parse_ts_ns, TS_DTYPE)
_FEED_SPECS: dict[str, _FeedSpec] = {
    "bars": _FeedSpec(
        fields=(
            _TS_FIELD,
            _num("open"),
            _num("high"),
            _num("low"),
            _num("close"),
            _num("volume"),
            _optional(_num("vwap")),
            _Field("trades", _int, pl.Int64(), required=False, nullable=True),
        ),
        symbol_key="symbol",
        symbol_required=False,
        check=_check_bar,
    ),
    "greeks": _FeedSpec(
        fields=(
            _TS_FIELD,
            _Field("expiry", _date, pl.Date()),
            _num("strike"),
            _Field("right", _right, pl.Utf8()),
            *(_num(k, nullable=True) for k in ("iv", "delta", "gamma", "theta", "vega")),
            *(_optional(_num(k)) for k in ("rho", "underlying_price", "mark", "bid", "ask")),
            _Field("open_interest", _int, pl.Int64(), required=False, nullable=True),
            _optional(_num("volume")),
            _Field("option_symbol", _str, pl.Utf8(), required=False, nullable=True),
        ),
        symbol_key="underlying",
        symbol_required=True,
        check=_check_greek,
    ),
    "headlines": _FeedSpec(
        fields=(
            _TS_FIELD,
            _Field("symbols", _symbols, pl.List(pl.Utf8()), required=False, nullable=True),
            _Field("headline", _str, pl.Utf8()),
            _Field("source", _str, pl.Utf8(), required=False, nullable=True),
            _optional(_num("sentiment")),
            _Field("id", _id, pl.Utf8(), required=False, nullable=True, column="headline_id"),
            _Field("url", _str, pl.Utf8(), required=False, nullable=True),
        ),
        symbol_key=None,
        symbol_required=False,
        check=_check_headline,
    ),
}


def _spec(feed: str) -> _FeedSpec:
    try:
        return _FEED_SPECS[feed]
    except (KeyError, TypeError):
        raise ValueError(f"unknown vendor feed {feed!r}: expected one of {', '.join(FEEDS)}") from None


def core_schema(feed: str) -> dict[str, pl.DataType]:
    """Columns every parsed frame of ``feed`` has, in order (extras follow)."""
    spec = _spec(feed)
    schema: dict[str, pl.DataType] = {"ts": TS_DTYPE, "symbol": pl.Utf8()}
    schema.update({f.out: f.dtype for f in spec.fields if f.key != "ts"})
    schema.update({"pull_id": pl.Utf8(), "pulled_at": TS_DTYPE})
    return schema


def empty_frame(feed: str) -> pl.DataFrame:
    return pl.DataFrame(schema=core_schema(feed))


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

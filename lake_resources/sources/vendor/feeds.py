"""The vendor feeds' record schemas: one ``_FeedSpec`` per feed (fields, parsers, plausibility check),
and the typed value parsers they use."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import polars as pl

from lake_resources.catalog.validation import (
    LakeValidationError,
    parse_date,
    validate_symbol,
)
from lake_resources.sources.vendor.records import _EPOCH, _INT64_MAX, _INT64_MIN, _NS_PER_S, _TS, FEEDS, TS_DTYPE

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

"""Validation of every name that reaches a path or a query: symbols, dates, dataset names.

Everything user-supplied passes through here before it becomes part of a storage path, so no
``../``, absolute path or odd character can reach the lake.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")
_DATASET = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}$")


class LakeValidationError(ValueError):
    """A name or value from outside the lake failed validation."""


def validate_symbol(symbol: str) -> str:
    """Return the canonical (upper-case) symbol or raise ``LakeValidationError``."""
    if not isinstance(symbol, str):
        raise LakeValidationError(f"symbol must be a string, got {type(symbol).__name__}")
    canonical = symbol.strip().upper()
    if not _SYMBOL.match(canonical) or ".." in canonical:
        raise LakeValidationError(
            f"invalid symbol {symbol!r}: use letters, digits, '.', '_' or '-' (max 32 chars)"
        )
    return canonical


def validate_dataset(name: str) -> str:
    if not isinstance(name, str) or not _DATASET.match(name):
        raise LakeValidationError(
            f"invalid dataset name {name!r}: lower-case letters, digits and '_' only"
        )
    return name


def validate_partition_value(value: str) -> str:
    """A free-form partition value (e.g. a strategy run id) used as one path segment."""
    if not isinstance(value, str) or not _KEY.match(value) or ".." in value:
        raise LakeValidationError(
            f"invalid partition value {value!r}: letters, digits, '.', '_', '=', '-' only"
        )
    return value


def parse_date(value: str | date | datetime) -> date:
    """Parse a ``YYYY-MM-DD`` date (or pass a date through) with a clear error."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise LakeValidationError(f"invalid date {value!r}: expected YYYY-MM-DD") from None


def validate_lake_home(path: str) -> str:
    """``LAKE_HOME`` may hold glob characters (paths given to DuckDB and polars are literal), but not
    ``?``: DuckDB takes what follows a ``?`` in a database path for URL parameters, so the warm file
    (and its write-ahead log) could not be opened."""
    if "?" in path:
        raise LakeValidationError(
            f"LAKE_HOME={path!r} contains '?': DuckDB cannot open a database file (warm.duckdb) under such a path; "
            "choose a LAKE_HOME without '?'"
        )
    return path


TimeLike = str | date | datetime


def time_bound(value: TimeLike, *, end: bool) -> datetime:
    """A date (``YYYY-MM-DD``) as a bound covers the whole day; datetimes are taken as UTC."""
    if isinstance(value, str):
        if len(value) == 10:
            value = parse_date(value)
        else:
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise LakeValidationError(f"invalid time {value!r}: use YYYY-MM-DD or ISO 8601") from None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    start = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return start + timedelta(days=1) if end else start

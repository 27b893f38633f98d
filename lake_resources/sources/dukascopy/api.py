"""Dukascopy JSON data API source: hours of ticks and periods of candles, as served (bytes + provenance).

Bases: ``https://jetta.dukascopy.com/v1`` (default), any ``http(s)://`` mirror, ``s3://bucket/prefix``,
or a local directory / ``file://`` laid out like the URL paths (``ticks/EUR-USD/2026/7/13/12``, a file).
Transport, retries and the download cache are the BI5 source's (:mod:`lake_resources.sources.dukascopy.datafeed`):
one retry loop with exponential backoff and jitter on timeouts, connection errors, 5xx and 429 (waiting
at least the server's ``Retry-After``); a 404 is *missing* (no data); a 200 whose JSON does not parse
(a truncated body) is asked again like a 5xx and, if it never parses, kept as received so the decoder
quarantines it with the reason.

What the API adds:

- **Empty is not always empty** (dukascopy-node #130: a throttled server may answer an hour that has
  data with an empty body). An empty answer for an hour inside the instrument's trading hours is asked
  again up to ``empty_retries`` times, ``empty_pause`` seconds apart; only then is it *empty*. It is
  cached as final only once settled (``settle_after`` past the hour's end).
- **The period containing now** is asked in the ``?from=`` form and never cached; a future hour is
  *missing* without a request. Completed periods are cached once present (or settled).
- **Pacing**: a day's hours are fetched in batches of ``max_concurrency`` parallel requests with
  ``batch_pause`` seconds between batches.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lake_resources.catalog.api_instruments import api_code
from lake_resources.catalog.validation import parse_date, validate_symbol
from lake_resources.sources.dukascopy import api_codec as codec
from lake_resources.sources.dukascopy.bi5 import day_hours
from lake_resources.sources.dukascopy.datafeed import (
    HourFetch,
    HourStatus,
    SourceError,
    _digest,
    _DownloadCache,
    _HttpBackend,
    _LocalBackend,
    _Retryable,
    _S3Backend,
    _utc_hour,
)

DEFAULT_API_BASE = "https://jetta.dukascopy.com/v1"
FEED = "api"
_EMPTY_BODY = re.compile(rb'"times"\s*:\s*\[\s*\]')


@dataclass(frozen=True)
class CandleFetch:
    """One candle response (a day of minutes, a month of hours or a year of days) with its provenance."""

    kind: str  # minute | hour | day
    side: str  # BID | ASK
    start: date  # first day of the period
    path: str  # the completed-period path, e.g. candles/minute/EUR-USD/BID/2019/2/4
    status: HourStatus
    payload: bytes = field(repr=False)
    source: str
    sha256: str | None
    from_cache: bool = False
    current: bool = False  # the period containing now (asked with ?from=, never cached)


def _classify(payload: bytes | None) -> tuple[HourStatus, bool]:
    """(status, parses) of an answer: None is missing, an empty body or ``"times": []`` is empty."""
    if payload is None:
        return "missing", True
    if not payload.strip():
        return "empty", True
    try:
        obj = codec.parse(payload)
    except codec.ApiDecodeError:
        return "present", False  # kept as received; the decoder quarantines it with the reason
    return ("empty" if codec.is_empty(obj) else "present"), True


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _period_end(kind: str, start: date) -> date:
    if kind == "minute":
        return start + timedelta(days=1)
    if kind == "hour":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return date(start.year + 1, 1, 1)


def period_start(kind: str, day: date) -> date:
    """First day of the candle period of ``kind`` containing ``day``."""
    return day if kind == "minute" else date(day.year, day.month, 1) if kind == "hour" else date(day.year, 1, 1)


def _utc(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


class DukascopyApiSource:
    """Fetch ticks and candles from a Dukascopy JSON data API base (see the module docstring)."""

    feed = FEED

    def __init__(
        self,
        base: str = DEFAULT_API_BASE,
        *,
        cache_dir: Path | str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        timeout: float = 20,
        max_concurrency: int = 4,
        retries: int = 4,
        backoff: float = 0.5,
        batch_pause: float = 0.0,
        empty_retries: int = 2,
        empty_pause: float = 1.0,
        settle_after: timedelta = timedelta(hours=24),
        now: Callable[[], datetime] | None = None,
    ):
        for name, value, low in (("timeout", timeout, 1e-9), ("max_concurrency", max_concurrency, 1),
                                 ("retries", retries, 0), ("backoff", backoff, 0), ("batch_pause", batch_pause, 0),
                                 ("empty_retries", empty_retries, 0), ("empty_pause", empty_pause, 0)):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        base = str(base)
        scheme = urlsplit(base).scheme.lower()
        self._remote = scheme in ("http", "https", "s3")
        if scheme in ("http", "https"):
            if storage_options:
                raise ValueError("storage_options apply to s3:// bases only")
            self._backend = _HttpBackend(base, timeout=timeout, retries=retries, backoff=backoff,
                                         pool_size=max_concurrency)
        elif scheme == "s3":
            self._backend = _S3Backend(base, storage_options, timeout=timeout, retries=retries, backoff=backoff)
        elif scheme == "file":
            parts = urlsplit(base)
            if parts.netloc not in ("", "localhost"):
                raise ValueError(f"file URL {base!r} names a remote host; use file:///absolute/path")
            self._backend = _LocalBackend(Path(unquote(parts.path)))
        elif scheme == "" or len(scheme) == 1:
            self._backend = _LocalBackend(Path(base))
        else:
            raise ValueError(f"unsupported API base scheme {scheme!r}: use http(s)://, s3://, file:// or a local path")
        self._http = isinstance(self._backend, _HttpBackend)
        self.max_concurrency = max_concurrency
        self.batch_pause = batch_pause
        self.empty_retries = empty_retries
        self.empty_pause = empty_pause
        self.settle_after = settle_after
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._cache = _DownloadCache(Path(cache_dir), "api " + self._backend.describe) if cache_dir is not None else None
        self.requests = 0  # answers asked of the base (not the cache), for logs and tests
        self._lock = threading.Lock()

    @property
    def base(self) -> str:
        return self._backend.describe

    def __repr__(self) -> str:
        return f"DukascopyApiSource({self.base!r})"

    # ------------------------------------------------------------------------------ one answer
    def _read(self, rel: str) -> tuple[bytes | None, HourStatus, bool]:
        """(payload, status, whether it parses) of one answer; the JSON is parsed once."""
        with self._lock:
            self.requests += 1
        if not self._http:
            payload = self._backend.read(rel)
            return (payload, *_classify(payload))
        seen: list[tuple[bytes, HourStatus, bool]] = []

        def validate(body: bytes) -> None:
            status, parses = _classify(body)
            seen.append((body, status, parses))
            if not parses:
                raise _Retryable(f"invalid JSON body ({len(body)} bytes, truncated?)")

        try:
            payload = self._backend.read(rel, validate)
        except SourceError:
            if not seen:
                raise
            return seen[-1]  # never parsed: kept as received, quarantined by the decoder
        if payload is None:
            return None, "missing", True
        return seen[-1]

    def _settled(self, end: datetime) -> bool:
        return end + self.settle_after <= self._now()

    def _fetch(self, rel: str, start: datetime, end: datetime, *, trading: bool) -> tuple[HourStatus, bytes, str, bool, bool]:
        """(status, payload, source, from_cache, current) of the period [start, end) at ``rel``."""
        now = self._now()
        if start >= now:
            return "missing", b"", f"{self._backend.locate(rel)} (not yet: the period starts in the future)", False, False
        current = end > now
        asked = codec.current_path(rel, _ms(start)) if current and self._remote else rel
        if self._cache is not None and not current:
            cached = self._cache.get(rel)
            if cached is not None:
                status, payload = cached
                if status == "present" and _EMPTY_BODY.search(payload):
                    status = "empty"
                return status, payload, self._backend.locate(rel), True, False
        payload, status, parses = self._read(asked)
        for _ in range(self.empty_retries if trading and not current else 0):
            if status != "empty":
                break
            time.sleep(self.empty_pause)  # a throttled server's empty answer may be wrong: ask again
            payload, status, parses = self._read(asked)
        payload = payload or b""
        if (self._cache is not None and not current and parses
                and (status == "present" or self._settled(end))):
            self._cache.put(rel, status, payload)
        return status, payload, self._backend.locate(asked), False, current

    # ------------------------------------------------------------------------------ ticks
    def fetch_hour(self, symbol: str, hour_start: datetime, *, trading: bool = False) -> HourFetch:
        """One hour of ticks. ``trading``: the hour is inside the instrument's trading hours, so an
        empty answer is asked again before it is believed."""
        symbol = validate_symbol(symbol)
        hour = _utc_hour(hour_start)
        rel = codec.ticks_path(api_code(symbol), hour)
        status, payload, source, from_cache, _ = self._fetch(rel, hour, hour + timedelta(hours=1), trading=trading)
        return HourFetch(hour, rel, status, payload, source, _digest(status, payload), from_cache=from_cache, feed=FEED)

    def fetch_day(self, symbol: str, day: date | str, *, trading_hours: Iterable[int] | None = None) -> list[HourFetch]:
        """A UTC day's 24 hours, in hour order: batches of ``max_concurrency`` requests, ``batch_pause``
        seconds apart. ``trading_hours``: UTC hours an empty answer is asked again for (default: the
        trading calendar's hours of the symbol, none if it has no rule)."""
        symbol = validate_symbol(symbol)
        day = parse_date(day)
        if trading_hours is None:
            trading_hours = _calendar_hours(symbol, day)
        trading = set(trading_hours)
        hours = day_hours(day)
        out: list[HourFetch] = []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, 24), thread_name_prefix="dukascopy-api") as pool:
            for i in range(0, 24, self.max_concurrency):
                batch = hours[i:i + self.max_concurrency]
                before = self.requests
                futures = [pool.submit(self.fetch_hour, symbol, h, trading=h.hour in trading) for h in batch]
                try:
                    out += [f.result() for f in futures]
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
                if self.batch_pause and self.requests > before and i + self.max_concurrency < 24:
                    time.sleep(self.batch_pause)  # pace the server (cache hits need no pause)
        return out

    # ------------------------------------------------------------------------------ candles
    def fetch_candles(self, symbol: str, kind: str, side: str, day: date | str) -> CandleFetch:
        """The candle response of ``kind`` (minute/hour/day) and ``side`` whose period contains ``day``."""
        symbol = validate_symbol(symbol)
        start = period_start(kind, parse_date(day))
        rel = codec.candles_path(kind, api_code(symbol), side, start)
        status, payload, source, from_cache, current = self._fetch(
            rel, _utc(start), _utc(_period_end(kind, start)), trading=False)
        return CandleFetch(kind, side, start, rel, status, payload, source, _digest(status, payload), from_cache, current)

    def fetch_raw(self, rel: str) -> bytes | None:
        """Any path under the base as served (``instruments``, ``instruments/EUR-USD``); None on 404."""
        return self._read(rel)[0]

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> DukascopyApiSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _calendar_hours(symbol: str, day: date) -> list[int]:
    from lake_resources.catalog.calendar import expected_hours

    try:
        return expected_hours(symbol, day)
    except (ValueError, KeyError):  # no trading-hours rule: believe empty answers
        return []

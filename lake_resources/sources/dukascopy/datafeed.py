"""Dukascopy datafeed source: hourly BI5 tick files from an HTTP mirror, a local directory or S3.

Every base serves the same layout, ``{SYMBOL}/{YYYY}/{MM zero-based}/{DD}/{HH}h_ticks.bi5``
(:func:`lake_resources.sources.dukascopy.bi5.hour_path`):

- ``http://`` / ``https://`` — a mirror (default: Dukascopy's own datafeed host). ``requests`` with one
  pooled Session, timeouts, and retries with exponential backoff (plus jitter) on 5xx, 429, timeouts and
  connection errors. 404 is a *missing* hour (not retried); 200 with an empty body is an *empty* hour.
  Credentials in the URL (``https://user:pass@host/...``) are sent as HTTP basic auth, never echoed.
- a local directory, as a plain path or ``file://`` URL.
- ``s3://bucket/prefix`` through s3fs; ``storage_options`` are passed to ``s3fs.S3FileSystem``
  (``key``, ``secret``, ``endpoint_url``, ``client_kwargs``, ``config_kwargs`` ...).

Locally and on S3 a missing file is *missing* and a 0-byte file is *empty* (Dukascopy's "no ticks
this hour"). Neither is an error; everything else that goes wrong raises :class:`SourceError` naming the
URL or path and the last error. No credential ever appears in an error message or in ``HourFetch.source``.

With ``cache_dir`` every file is fetched once: present files always, empty and missing hours once they
have settled (the hour ended more than ``settle_after`` ago, so a mirror still catching up is asked
again). Cache files are written with ``lake_resources.storage.write_atomic`` (hidden temp file, fsync,
rename; the lake's sweep removes a killed write's stale temp file), under a sub-directory per base so two
sources never share entries. Delete the cache directory to forget a cached "missing".
"""

from __future__ import annotations

import copy
import hashlib
import random
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from lake_resources.catalog.validation import parse_date, validate_symbol
from lake_resources.sources.dukascopy.bi5 import day_hours, hour_path
from lake_resources.storage import write_atomic

DEFAULT_BASE = "https://datafeed.dukascopy.com/datafeed"

HourStatus = Literal["present", "empty", "missing"]

_MAX_BACKOFF_S = 30.0
_MAX_RETRY_AFTER_S = 120.0  # a server asking for longer is treated as asking for this
_MISSING_MARKER = ".missing"
# Keys of storage_options whose values are credentials (matched case-insensitively, at any depth).
_SECRET_KEY_PARTS = ("secret", "token", "password", "access_key", "credential")
_SECRET_KEYS = {"key", "aws_access_key_id", "username", "user"}


class SourceError(RuntimeError):
    """A datafeed file could not be fetched; the message names the URL/path and the last error."""


@dataclass(frozen=True)
class HourFetch:
    """One hourly tick file as fetched, with its provenance."""

    hour: datetime  # start of the hour, UTC
    path: str  # relative datafeed path, e.g. EURUSD/2019/01/04/00h_ticks.bi5
    status: HourStatus
    payload: bytes = field(repr=False)  # the BI5 bytes as served (b"" when empty or missing)
    source: str  # URL or path it came from, without credentials
    sha256: str | None  # of the payload; None when missing
    from_cache: bool = False
    feed: str = "datafeed"  # "datafeed" (BI5) or "api" (JSON data API, lake_resources.sources.dukascopy.api)


def _utc_hour(hour_start: datetime) -> datetime:
    if not isinstance(hour_start, datetime):
        raise TypeError(f"hour_start must be a datetime, got {type(hour_start).__name__}")
    # Naive datetimes are taken as UTC, as the codec does.
    hour = hour_start.replace(tzinfo=timezone.utc) if hour_start.tzinfo is None else hour_start.astimezone(timezone.utc)
    if hour.minute or hour.second or hour.microsecond:
        raise ValueError(f"hour_start {hour_start.isoformat()} is not the start of an hour")
    return hour


def _collect_secrets(options: Any, found: list[str]) -> list[str]:
    if isinstance(options, Mapping):
        for key, value in options.items():
            name = str(key).lower()
            if isinstance(value, str) and value and (
                name in _SECRET_KEYS or any(part in name for part in _SECRET_KEY_PARTS)
            ):
                found.append(value)
            else:
                _collect_secrets(value, found)
    elif isinstance(options, (list, tuple)):
        for value in options:
            _collect_secrets(value, found)
    return found


class _Redactor:
    def __init__(self, secrets: list[str]):
        # Longest first, so a secret containing another is replaced whole; also their URL-encoded forms.
        forms = {s for s in secrets if s} | {quote(s, safe="") for s in secrets if s}
        self._secrets = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class _Retryable(Exception):
    """One attempt failed in a way the next may not (a timeout, a 5xx, throttling); the message says how.
    ``retry_after``: the server's ``Retry-After`` in seconds, waited instead of a shorter backoff."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (delta-seconds or an HTTP date), capped; None if absent/bad."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(_MAX_RETRY_AFTER_S, max(0.0, seconds)) if seconds == seconds else None


def _with_retries(url: str, attempt: Callable[[], bytes | None], *, retries: int, backoff: float, rng,
                  redact: Callable[[str], str]) -> bytes | None:
    """``attempt()`` until it returns, up to ``retries`` more times after a ``_Retryable`` failure, with
    exponential backoff and jitter (so concurrent workers do not retry in lock-step)."""
    last_error = ""
    wait_at_least = 0.0
    for n in range(retries + 1):
        if n:
            time.sleep(max(wait_at_least, min(_MAX_BACKOFF_S, backoff * 2 ** (n - 1)) * rng.uniform(0.5, 1.0)))
        try:
            return attempt()
        except _Retryable as exc:
            last_error = str(exc)
            wait_at_least = exc.retry_after or 0.0
    raise SourceError(redact(f"{url}: giving up after {retries + 1} attempts; last error: {last_error}"))


class _HttpBackend:
    def __init__(self, base: str, *, timeout: float, retries: int, backoff: float, pool_size: int):
        parts = urlsplit(base)
        if not parts.hostname:
            raise ValueError(f"datafeed URL {self._strip_userinfo(parts)!r} has no host")
        if parts.query or parts.fragment:
            raise ValueError(
                f"datafeed URL {self._strip_userinfo(parts)!r} must not have a query or fragment: "
                "file paths are appended to it"
            )
        self._base = self._strip_userinfo(parts).rstrip("/")
        self.describe = self._base
        self._session = requests.Session()
        secrets: list[str] = []
        if parts.username is not None or parts.password is not None:
            user, password = unquote(parts.username or ""), unquote(parts.password or "")
            self._session.auth = (user, password)
            secrets += [parts.password or "", password]
        self.redact = _Redactor(secrets)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._random = random.Random()

    @staticmethod
    def _strip_userinfo(parts) -> str:
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def locate(self, rel: str) -> str:
        return f"{self._base}/{rel}"

    def read(self, rel: str, validate: Callable[[bytes], None] | None = None) -> bytes | None:
        """GET ``rel``; None on 404. ``validate(body)`` may raise ``_Retryable`` (e.g. a truncated body)."""
        url = self.locate(rel)

        def attempt() -> bytes | None:
            try:
                response = self._session.get(url, timeout=self._timeout)
            except (
                requests.Timeout,
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None
            except requests.RequestException as exc:  # invalid URL and the like: retrying cannot help
                raise SourceError(self.redact(f"{url}: request failed: {type(exc).__name__}: {exc}")) from None
            status = response.status_code
            if status == 200:
                if validate is not None:
                    validate(response.content)
                return response.content
            if status == 404:
                return None
            if status >= 500 or status == 429:
                raise _Retryable(f"HTTP {status} {response.reason or ''}".rstrip(),
                                 retry_after=_retry_after(response.headers.get("Retry-After")))
            raise SourceError(self.redact(f"{url}: HTTP {status} {response.reason or ''}".rstrip() + " (not retried)"))

        return _with_retries(url, attempt, retries=self._retries, backoff=self._backoff, rng=self._random,
                             redact=self.redact)

    def close(self) -> None:
        self._session.close()


class _LocalBackend:
    def __init__(self, root: Path):
        self._root = root.resolve()
        if not self._root.is_dir():
            raise ValueError(f"local datafeed directory {str(self._root)!r} does not exist or is not a directory")
        self.describe = str(self._root)
        self.redact = _Redactor([])

    def locate(self, rel: str) -> str:
        return str(self._root / rel)

    def read(self, rel: str) -> bytes | None:
        path = self._root / rel
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {type(exc).__name__}: {exc.strerror or exc}") from None

    def close(self) -> None:
        pass


class _S3Backend:
    def __init__(self, base: str, storage_options: Mapping[str, Any] | None, *, timeout: float, retries: int, backoff: float):
        parts = urlsplit(base)
        if not parts.netloc:
            raise ValueError(f"S3 datafeed URL {base.split('?')[0]!r} has no bucket (expected s3://bucket/prefix)")
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise ValueError("S3 datafeed URL must be s3://bucket/prefix; pass credentials in storage_options")
        self._bucket_prefix = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
        self.describe = f"s3://{self._bucket_prefix}"
        options = copy.deepcopy(dict(storage_options or {}))
        self.redact = _Redactor(_collect_secrets(options, []))
        config = options.setdefault("config_kwargs", {})
        config.setdefault("connect_timeout", timeout)
        config.setdefault("read_timeout", timeout)
        import s3fs  # imported here: only S3 bases need it

        try:
            self._fs = s3fs.S3FileSystem(**options)
        except Exception as exc:  # bad options: name the bucket, never the values
            raise ValueError(self.redact(f"{self.describe}: invalid storage_options: {type(exc).__name__}: {exc}")) from None
        self._retries = retries
        self._backoff = backoff
        self._random = random.Random()
        self._bucket_checked = False

    def locate(self, rel: str) -> str:
        return f"s3://{self._bucket_prefix}/{rel}"

    def read(self, rel: str) -> bytes | None:
        url = self.locate(rel)

        def attempt() -> bytes | None:
            try:
                return self._fs.cat_file(f"{self._bucket_prefix}/{rel}")
            except FileNotFoundError:
                pass
            except PermissionError as exc:  # access denied: retrying cannot help
                raise SourceError(self.redact(f"{url}: access denied: {exc}")) from None
            except Exception as exc:  # connection errors, throttling, 5xx surfaced by botocore/aiohttp
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None
            self._check_bucket()  # outside the handlers: a wrong bucket is an error, never retried
            return None

        return _with_retries(url, attempt, retries=self._retries, backoff=self._backoff, rng=self._random,
                             redact=self.redact)

    def _check_bucket(self) -> None:
        # A missing object is a missing hour, but a wrong bucket name must not look like "no data".
        if self._bucket_checked:
            return
        bucket = self._bucket_prefix.split("/", 1)[0]
        try:
            exists = self._fs.exists(bucket)
        except Exception as exc:
            raise SourceError(self.redact(f"s3://{bucket}: cannot check the bucket: {type(exc).__name__}: {exc}")) from None
        if not exists:
            raise SourceError(f"s3://{bucket}: bucket does not exist (datafeed base {self.describe})")
        self._bucket_checked = True

    def close(self) -> None:
        pass


class _DownloadCache:
    """Files under ``root/<base digest>/<datafeed path>``; a missing hour is a ``.missing`` marker file."""

    def __init__(self, root: Path, base_description: str):
        digest = hashlib.sha256(base_description.encode()).hexdigest()[:16]
        self.root = Path(root) / digest

    def get(self, rel: str) -> tuple[HourStatus, bytes] | None:
        path = self.root / rel
        try:
            payload = path.read_bytes()
        except FileNotFoundError:
            marker = path.with_name(path.name + _MISSING_MARKER)
            return ("missing", b"") if marker.exists() else None
        except OSError as exc:
            raise SourceError(f"download cache {path}: cannot read: {exc}") from None
        return ("present" if payload else "empty"), payload

    def put(self, rel: str, status: HourStatus, payload: bytes) -> None:
        path = self.root / rel
        if status == "missing":
            path = path.with_name(path.name + _MISSING_MARKER)
        try:
            write_atomic(path, payload)  # a 0-byte file means "empty hour": never expose half a file
        except OSError as exc:
            raise SourceError(f"download cache {path}: cannot write: {exc}") from None


class DukascopySource:
    """Fetch hourly tick files from a Dukascopy-layout base (HTTP mirror, local directory or S3).

    ``retries`` is the number of retries after the first attempt (HTTP and S3); ``backoff`` the first
    retry delay in seconds, doubled per retry. ``settle_after``: how long after an hour ends an empty or
    missing answer is final enough to cache.
    """

    def __init__(
        self,
        base: str = DEFAULT_BASE,
        *,
        cache_dir: Path | str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        timeout: float = 20,
        max_concurrency: int = 8,
        retries: int = 4,
        backoff: float = 0.5,
        settle_after: timedelta = timedelta(hours=24),
    ):
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if backoff < 0:
            raise ValueError(f"backoff must be >= 0 seconds, got {backoff}")
        base = str(base)
        scheme = urlsplit(base).scheme.lower()
        if scheme in ("http", "https"):
            if storage_options:
                raise ValueError("storage_options apply to s3:// bases only")
            self._backend = _HttpBackend(
                base, timeout=timeout, retries=retries, backoff=backoff, pool_size=max_concurrency
            )
        elif scheme == "s3":
            self._backend = _S3Backend(base, storage_options, timeout=timeout, retries=retries, backoff=backoff)
        elif scheme == "file":
            parts = urlsplit(base)
            if parts.netloc not in ("", "localhost"):
                raise ValueError(f"file URL {base!r} names a remote host; use file:///absolute/path")
            self._backend = _LocalBackend(Path(unquote(parts.path)))
        elif scheme == "" or len(scheme) == 1:  # a plain path (a one-letter scheme is a Windows drive)
            self._backend = _LocalBackend(Path(base))
        else:
            raise ValueError(
                f"unsupported datafeed base scheme {scheme!r}: use http(s)://, s3://, file:// or a local path"
            )
        self.max_concurrency = max_concurrency
        self.settle_after = settle_after
        self._cache = _DownloadCache(Path(cache_dir), self._backend.describe) if cache_dir is not None else None

    @property
    def base(self) -> str:
        """The base URL or path, without credentials."""
        return self._backend.describe

    def __repr__(self) -> str:
        return f"DukascopySource({self.base!r})"

    def _settled(self, hour: datetime) -> bool:
        return hour + timedelta(hours=1) + self.settle_after <= datetime.now(timezone.utc)

    def fetch_hour(self, symbol: str, hour_start: datetime) -> HourFetch:
        """Fetch one hour's tick file. Raises ``SourceError`` when the source fails (after retries)."""
        symbol = validate_symbol(symbol)
        hour = _utc_hour(hour_start)
        rel = hour_path(symbol, hour)
        source = self._backend.locate(rel)
        if self._cache is not None:
            cached = self._cache.get(rel)
            if cached is not None:
                status, payload = cached
                return HourFetch(hour, rel, status, payload, source, _digest(status, payload), from_cache=True)
        payload = self._backend.read(rel)
        status: HourStatus = "missing" if payload is None else ("present" if payload else "empty")
        payload = payload or b""
        if self._cache is not None and (status == "present" or self._settled(hour)):
            self._cache.put(rel, status, payload)
        return HourFetch(hour, rel, status, payload, source, _digest(status, payload))

    feed = "datafeed"

    def fetch_file(self, rel: str) -> bytes | None:
        """Any file under the base (e.g. a candle file), not cached; None when missing."""
        return self._backend.read(rel)

    def fetch_day(self, symbol: str, day: date | str) -> list[HourFetch]:
        """Fetch a UTC day's 24 hourly files, in hour order, at most ``max_concurrency`` at a time."""
        symbol = validate_symbol(symbol)
        hours = day_hours(parse_date(day))
        if self.max_concurrency == 1:
            return [self.fetch_hour(symbol, hour) for hour in hours]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, 24), thread_name_prefix="dukascopy") as pool:
            futures = [pool.submit(self.fetch_hour, symbol, hour) for hour in hours]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:  # one hour failed: do not start the rest
                    future.cancel()
                raise

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> DukascopySource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _digest(status: HourStatus, payload: bytes) -> str | None:
    return None if status == "missing" else hashlib.sha256(payload).hexdigest()

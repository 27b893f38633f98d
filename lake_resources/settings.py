"""One typed settings object for the lake, read from environment variables with defaults.

Embedded default: everything under ``LAKE_HOME`` (``./.lake``), the cold tier a local directory with
the same layout as the bucket. Set ``LAKE_S3_ENDPOINT`` to put the cold tier (and the raw zone) on an
S3/MinIO bucket instead. Secrets are held here but never rendered: ``repr`` and ``describe`` redact them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from lake_resources.catalog.validation import LakeValidationError, parse_date, validate_lake_home, validate_symbol
from lake_resources.lakeconfig import DEFAULT, layered

DEFAULT_SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD", "AAPL", "MSFT")
DEFAULT_DUKASCOPY_URL = "https://datafeed.dukascopy.com/datafeed"
DEFAULT_DUKASCOPY_API = "https://jetta.dukascopy.com/v1"
DUKASCOPY_FEEDS = ("api", "datafeed")
DEFAULT_DUKASCOPY_FEED = "api"
DEFAULT_START_DATE = "2019-01-01"
SHARED_LANDING_OFF = "none"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3 bucket naming rules

#: Environment variables the lake reads, with what they mean (shown by ``lake config`` and the README).
ENV_VARS: dict[str, str] = {
    "LAKE_HOME": "root of the embedded lake: hot/, warm.duckdb, cold/, raw/, landing/, dagster/, lake.toml "
    "(default ./.lake)",
    "LAKE_S3_ENDPOINT": "S3/MinIO endpoint URL for the cold tier and raw zone (unset: local cold directory)",
    "LAKE_S3_BUCKET": "bucket of the cold tier (default quant-lake)",
    "LAKE_S3_PREFIX": "key prefix inside the bucket (default lake)",
    "LAKE_S3_REGION": "S3 region (default us-east-1)",
    "LAKE_S3_VERIFY": "TLS certificate verification: true (default), false, or a CA bundle path",
    "AWS_ACCESS_KEY_ID": "S3 access key (from the environment only)",
    "AWS_SECRET_ACCESS_KEY": "S3 secret key (from the environment only; never logged)",
    "LAKE_DUKASCOPY_URL": "Dukascopy BI5 datafeed base: https:// mirror, file:// or local dir, or s3://bucket/prefix",
    "LAKE_DUKASCOPY_FEED": "which Dukascopy feed ingestion reads: 'api' (JSON data API, default) or 'datafeed' "
    "(BI5 files at LAKE_DUKASCOPY_URL)",
    "LAKE_DUKASCOPY_API": "Dukascopy JSON data API base (default https://jetta.dukascopy.com/v1): an http(s):// "
    "mirror, file:// or local dir laid out like the URL paths, or s3://bucket/prefix",
    "LAKE_INSTRUMENTS_API": "API instrument catalogue file (default: LAKE_HOME/instruments_api.json once "
    "`lake instruments sync` wrote it, else the one shipped in lake_resources)",
    "LAKE_TODAY_PARTITION": "'on' adds the current UTC day to the daily partitions, materializable during the day "
    "(completed hours cached, the current hour re-read each run; default off)",
    "LAKE_DUKASCOPY_API_PAUSE": "seconds between batches of API requests (default 0.5)",
    "LAKE_LANDING": "landing area watched by the vendor-file sensor (default LAKE_HOME/landing)",
    "LAKE_SHARED_LANDING": "second landing area watched beside LAKE_LANDING: s3://bucket/prefix (through "
    "LAKE_S3_ENDPOINT) or a local path; 'none' for none (default s3://BUCKET/PREFIX/landing when "
    "LAKE_S3_ENDPOINT is set, else none)",
    "LAKE_SYMBOLS": "comma-separated symbols of the date x symbol partitions",
    "LAKE_START_DATE": "first date of the daily partitions (default 2019-01-01)",
    "DAGSTER_HOME": "Dagster instance directory (default LAKE_HOME/dagster)",
    "LAKE_LIFECYCLE": "lifecycle policy file (default: lifecycle.yaml in the repo)",
    "LAKE_AS_OF": "'now' for lifecycle ages, YYYY-MM-DD (default: today UTC)",
    "LAKE_STRATEGIES": "directory of strategy/heuristic specs (default: strategies/ in the repo)",
    "LAKE_BACKTEST_START": "first day backtests read (default: every stored day)",
    "LAKE_BACKTEST_END": "last day backtests read (default: every stored day)",
    "LAKE_SCHEDULES": "'running' switches the daily ingest schedule on (default: off on a laptop)",
    "LAKE_SERVE_TOKENS": "lake serve: bearer tokens name:scope:token, comma-separated (scope read or sql; never logged)",
    "LAKE_SERVE_TOKEN_FILE": "lake serve: file of name:scope:token lines (default for --token-file)",
}


def _flag(value: str | None, default: bool | str) -> bool | str:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    return value  # a CA bundle path


def _env_symbols(value: str) -> tuple[str, ...]:
    try:
        return tuple(validate_symbol(s) for s in value.split(",") if s.strip())
    except LakeValidationError as exc:
        raise LakeValidationError(f"LAKE_SYMBOLS={value!r}: {exc}") from None


def _validate_s3_names(bucket: str, prefix: str) -> None:
    """Bucket and key prefix end up in every object key: refuse what S3 or a path would misread."""
    if not _BUCKET.match(bucket or "") or ".." in bucket:
        raise LakeValidationError(
            f"LAKE_S3_BUCKET={bucket!r}: not a valid S3 bucket name (3-63 characters: lower-case letters, "
            "digits, '.' and '-', starting and ending with a letter or digit)"
        )
    parts = prefix.strip("/").split("/") if prefix.strip("/") else []
    if any(p in ("", ".", "..") for p in parts) or any(c in prefix for c in "\\*?[]{}\n\r\t"):
        raise LakeValidationError(
            f"LAKE_S3_PREFIX={prefix!r}: a key prefix must not have empty, '.' or '..' segments, "
            "nor backslashes, glob characters or control characters"
        )


def parse_feed(value: str | None) -> str:
    """``LAKE_DUKASCOPY_FEED``: api (default) or datafeed."""
    feed = (value or DEFAULT_DUKASCOPY_FEED).strip().lower()
    if feed not in DUKASCOPY_FEEDS:
        raise LakeValidationError(f"LAKE_DUKASCOPY_FEED={value!r}: expected one of {', '.join(DUKASCOPY_FEEDS)}")
    return feed


def _on_off(name: str, value: str | None) -> bool:
    flag = _flag(value, False)
    if not isinstance(flag, bool):
        raise LakeValidationError(f"{name}={value!r}: expected on or off")
    return flag


def _seconds(name: str, value: str | None, default: float) -> float:
    if value is None or not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise LakeValidationError(f"{name}={value!r}: expected a number of seconds >= 0")
    return seconds


@dataclass(frozen=True)
class LakeSettings:
    home: Path = Path(".lake")
    s3_endpoint: str | None = None
    s3_bucket: str = "quant-lake"
    s3_prefix: str = "lake"
    s3_region: str = "us-east-1"
    s3_verify: bool | str = True
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    dukascopy_url: str = DEFAULT_DUKASCOPY_URL
    dukascopy_feed: str = DEFAULT_DUKASCOPY_FEED
    dukascopy_api: str = DEFAULT_DUKASCOPY_API
    dukascopy_api_pause: float = 0.5
    today_partition: bool = False
    landing: Path | None = None
    shared_landing: str | None = None  # as configured; see ``shared_landing_location``
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    start_date: str = DEFAULT_START_DATE
    #: variable -> where its value came from ("environment" or the lake config file); unlisted = default
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LakeSettings:
        """Settings from ``env`` (default ``os.environ``) over the lake's ``LAKE_HOME/lake.toml``."""
        env = os.environ if env is None else env
        home = Path(env.get("LAKE_HOME") or ".lake").expanduser()
        env, sources = layered(env, home, ENV_VARS)
        symbols = env.get("LAKE_SYMBOLS")
        landing = env.get("LAKE_LANDING")
        return cls(
            home=home,
            s3_endpoint=env.get("LAKE_S3_ENDPOINT") or None,
            s3_bucket=env.get("LAKE_S3_BUCKET") or "quant-lake",
            s3_prefix=(env.get("LAKE_S3_PREFIX") or "lake").strip("/"),
            s3_region=env.get("LAKE_S3_REGION") or "us-east-1",
            s3_verify=_flag(env.get("LAKE_S3_VERIFY"), True),
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            dukascopy_url=env.get("LAKE_DUKASCOPY_URL") or DEFAULT_DUKASCOPY_URL,
            dukascopy_feed=parse_feed(env.get("LAKE_DUKASCOPY_FEED")),
            dukascopy_api=env.get("LAKE_DUKASCOPY_API") or DEFAULT_DUKASCOPY_API,
            dukascopy_api_pause=_seconds("LAKE_DUKASCOPY_API_PAUSE", env.get("LAKE_DUKASCOPY_API_PAUSE"), 0.5),
            today_partition=_on_off("LAKE_TODAY_PARTITION", env.get("LAKE_TODAY_PARTITION")),
            landing=Path(landing).expanduser() if landing else None,
            shared_landing=env.get("LAKE_SHARED_LANDING") or None,
            symbols=_env_symbols(symbols) if symbols else DEFAULT_SYMBOLS,
            start_date=env.get("LAKE_START_DATE") or DEFAULT_START_DATE,
            sources=sources,
        )

    def source(self, variable: str) -> str:
        """Where ``variable``'s value came from: "environment", the lake config file, or "default"."""
        return self.sources.get(variable, DEFAULT)

    def how_to_set(self, variable: str, value: str) -> str:
        """The exact command that sets ``variable`` for this lake (env var if that is where it is set)."""
        if self.source(variable) == "environment":
            return f"export {variable}={value}"
        return f"lake config --set {variable}={value}"

    def require_symbols(self, symbols: Iterable[str], stored: Callable[[str], bool] | None = None) -> list[str]:
        """The canonical ``symbols`` if this lake ingests them all (in ``LAKE_SYMBOLS``, or with data in the
        lake per ``stored``, e.g. a vendor symbol a landing sensor discovered); else one error saying which
        are unknown instruments and which are known but not ingested (with the command that adds them), so
        a typo is never a silent empty result."""
        from lake_resources.catalog.instruments import catalogue

        symbols = list(dict.fromkeys(validate_symbol(s) for s in symbols))
        others = [s for s in symbols if s not in self.symbols and not (stored and stored(s))]
        unknown = [s for s in others if s not in catalogue()]
        if unknown:
            raise LakeValidationError(
                f"unknown instrument(s) {', '.join(unknown)}: not in the instrument catalogue "
                "(lake_resources/catalog/instruments.json) and no data in this lake; check the spelling"
            )
        if others:
            wanted = ",".join([*self.symbols, *others])
            raise LakeValidationError(
                f"{', '.join(others)} {'is' if len(others) == 1 else 'are'} not ingested by this lake "
                f"(LAKE_SYMBOLS={','.join(self.symbols)}, {self.source('LAKE_SYMBOLS')}); to add "
                f"{'it' if len(others) == 1 else 'them'}: {self.how_to_set('LAKE_SYMBOLS', wanted)}"
            )
        return symbols

    def with_(self, **changes) -> LakeSettings:
        return replace(self, **changes)

    # Layout of the embedded lake -------------------------------------------------------------
    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home))
        validate_lake_home(str(self.home_abs))
        if self.landing is not None:
            object.__setattr__(self, "landing", Path(self.landing))
        self.shared_landing_location  # noqa: B018 - a malformed value fails here, not at the first sensor tick
        _validate_s3_names(self.s3_bucket, self.s3_prefix)
        try:
            parse_date(self.start_date)
        except LakeValidationError:
            raise LakeValidationError(f"LAKE_START_DATE={self.start_date!r}: not a valid date; expected YYYY-MM-DD") from None

    @property
    def home_abs(self) -> Path:
        return self.home.resolve()

    @property
    def hot_root(self) -> Path:
        return self.home_abs / "hot"

    @property
    def warm_path(self) -> Path:
        return self.home_abs / "warm.duckdb"

    @property
    def local_cold_root(self) -> Path:
        return self.home_abs / "cold"

    @property
    def landing_root(self) -> Path:
        return (self.landing or self.home / "landing").resolve()

    @property
    def shared_landing_location(self) -> str | None:
        """The second landing area (``LAKE_SHARED_LANDING``): an ``s3://`` URL, a local path, or None."""
        value = (self.shared_landing or "").strip()
        if not value:  # default: beside the cold tier and raw zone when they are on S3
            return self._s3_url("landing") if self.cold_is_s3 else None
        if value.lower() == SHARED_LANDING_OFF:
            return None

        def bad(why: str) -> LakeValidationError:
            return LakeValidationError(
                f"LAKE_SHARED_LANDING={value!r}: {why}; expected an s3://bucket/prefix URL, a local path, "
                f"or {SHARED_LANDING_OFF!r}"
            )

        scheme, sep, rest = value.partition("://")
        if not sep:
            path = Path(value).expanduser().resolve()
        elif scheme.lower() == "file":
            if not rest.startswith("/"):
                raise bad("a file:// URL needs an absolute path (file:///...)")
            path = Path(rest).resolve()
        elif scheme.lower() == "s3":
            bucket, _, key = rest.partition("/")
            if not _BUCKET.match(bucket) or ".." in bucket:
                raise bad(f"{bucket!r} is not a valid bucket name")
            parts = key.strip("/").split("/") if key.strip("/") else []
            if any(p in ("", ".", "..") for p in parts):
                raise bad(f"key prefix {key!r} has an empty, '.' or '..' segment")
            if not self.cold_is_s3:
                raise LakeValidationError(
                    f"LAKE_SHARED_LANDING={value!r}: an s3:// landing is read through LAKE_S3_ENDPOINT, which is not set"
                )
            return "/".join([f"s3://{bucket}", *parts])
        else:
            raise bad(f"unsupported scheme {scheme!r}")
        if path == self.landing_root:
            raise LakeValidationError(
                f"LAKE_SHARED_LANDING={value!r} is the LAKE_LANDING area {path}: its files would be read twice"
            )
        return str(path)

    @property
    def cache_root(self) -> Path:
        return self.home_abs / "cache"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home_abs / "dagster").resolve()

    @property
    def cold_is_s3(self) -> bool:
        return bool(self.s3_endpoint)

    def _s3_url(self, leaf: str) -> str:
        """``s3://{bucket}/{prefix}/{leaf}`` (no empty segment when the prefix is empty)."""
        return "/".join(p for p in (f"s3://{self.s3_bucket}", self.s3_prefix.strip("/"), leaf) if p)

    @property
    def cold_root(self) -> str:
        """Root of the cold tier: a local path, or ``s3://bucket/prefix/cold``."""
        return self._s3_url("cold") if self.cold_is_s3 else str(self.local_cold_root)

    @property
    def raw_root(self) -> str:
        """The raw zone (every vendor payload as received) lives beside the cold tier."""
        return self._s3_url("raw") if self.cold_is_s3 else str(self.home_abs / "raw")

    # Credentials ------------------------------------------------------------------------------
    def secrets(self) -> list[str]:
        """Values that must never appear in logs, metadata or messages."""
        return [s for s in (self.aws_secret_access_key, self.aws_access_key_id) if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def describe(self) -> dict[str, str]:
        """Settings as displayed to a person: secrets redacted."""
        return {
            "LAKE_HOME": str(self.home_abs),
            "hot tier": str(self.hot_root),
            "warm tier": str(self.warm_path),
            "cold tier": self.cold_root + (f" at {self.s3_endpoint}" if self.cold_is_s3 else ""),
            "raw zone": self.raw_root,
            "landing": str(self.landing_root),
            "shared landing": self.shared_landing_location or SHARED_LANDING_OFF,
            "DAGSTER_HOME": str(self.dagster_home),
            "LAKE_DUKASCOPY_FEED": self.dukascopy_feed,
            "LAKE_DUKASCOPY_API": self.dukascopy_api,
            "LAKE_DUKASCOPY_URL": self.dukascopy_url,
            "LAKE_SYMBOLS": ",".join(self.symbols),
            "LAKE_START_DATE": self.start_date,
            "AWS_ACCESS_KEY_ID": "set" if self.aws_access_key_id else "unset",
            "AWS_SECRET_ACCESS_KEY": "set (hidden)" if self.aws_secret_access_key else "unset",
        }

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

Modules: ``records`` (pulls, results, zstd), ``feeds`` (record schemas), ``parse`` (one pull to rows and
quarantine), ``landing`` (layout, writing pulls, connectors). Everything is re-exported here.
"""

from lake_resources.sources.vendor.feeds import core_schema, empty_frame, parse_ts_ns
from lake_resources.sources.vendor.landing import (
    LandingDirVendor,
    VendorConnector,
    make_pull,
    partition_dir,
    pull_path,
    write_pull,
)
from lake_resources.sources.vendor.parse import combine_results, latest_pull_rows, parse_pull
from lake_resources.sources.vendor.records import (
    DEFAULT_MAX_PULL_BYTES,
    FEED_KEYS,
    FEEDS,
    LINEAGE_COLUMNS,
    QUARANTINE_SCHEMA,
    TS_DTYPE,
    ParseResult,
    PullTooLargeError,
    Quarantined,
    RawPull,
    compress_pull,
    decompress_pull,
)

__all__ = [
    "DEFAULT_MAX_PULL_BYTES",
    "FEEDS",
    "FEED_KEYS",
    "LINEAGE_COLUMNS",
    "LandingDirVendor",
    "ParseResult",
    "PullTooLargeError",
    "QUARANTINE_SCHEMA",
    "Quarantined",
    "RawPull",
    "TS_DTYPE",
    "VendorConnector",
    "combine_results",
    "compress_pull",
    "core_schema",
    "decompress_pull",
    "empty_frame",
    "latest_pull_rows",
    "make_pull",
    "parse_pull",
    "parse_ts_ns",
    "partition_dir",
    "pull_path",
    "write_pull",
]

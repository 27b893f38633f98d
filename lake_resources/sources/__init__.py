"""Ingestion sources: the Dukascopy datafeed (HTTP mirror, local directory, S3), the Dukascopy JSON data
API (``lake_resources.sources.dukascopy.api``, the default feed) and vendor JSON pulls.

Plain building blocks without Dagster: each returns raw bytes plus provenance, so the assets can keep the
raw payload and parse (or re-parse) it later.
"""

from lake_resources.sources.dukascopy.datafeed import DEFAULT_BASE, DukascopySource, HourFetch, SourceError
from lake_resources.sources.vendor import (
    FEEDS,
    LandingDirVendor,
    ParseResult,
    Quarantined,
    RawPull,
    VendorConnector,
    compress_pull,
    decompress_pull,
    parse_pull,
)

__all__ = [
    "DEFAULT_BASE",
    "FEEDS",
    "DukascopySource",
    "HourFetch",
    "LandingDirVendor",
    "ParseResult",
    "Quarantined",
    "RawPull",
    "SourceError",
    "VendorConnector",
    "compress_pull",
    "decompress_pull",
    "parse_pull",
]

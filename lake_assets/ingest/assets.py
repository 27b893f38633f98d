"""Ingest: vendor payloads enter the lake as raw assets, then become canonical ticks."""

from datetime import date

import dagster as dg
import polars as pl

from lake_assets.metadata import daily_dataset_asset
from lake_assets.partitions import split_key
from lake_resources.catalog.calendar import expected_hours
from lake_resources.catalog.instruments import instrument
from lake_resources.dagster_io import (
    ALLOW_MISSING_KEY,
    DukascopyResource,
    LakeResource,
    PartitionInputs,
    PartitionStream,
)
from lake_resources.sources.dukascopy import ingest
from lake_resources.sources.dukascopy.datafeed import DukascopySource
from lake_resources.sources.dukascopy.ingest import RAW_HOURS_SCHEMA


@daily_dataset_asset("raw_dukascopy", "ingest", extra_kinds={"dukascopy"})
def raw_dukascopy(context: dg.AssetExecutionContext, dukascopy: DukascopyResource, lake: LakeResource) -> PartitionStream:
    """Fetch the 24 hours of each symbol-day from the Dukascopy feed in use (``LAKE_DUKASCOPY_FEED``: the
    JSON data API's responses, or BI5 files) and keep their bytes in the raw zone; each hour's status and feed."""
    store = lake.lake()
    keys = context.partition_keys
    counts: dict[str, int] = {}

    def produce():
        with SourceOnDemand(dukascopy) as source:
            for i, key in enumerate(keys, 1):
                frame = fetch_raw_day(context, source, store, key, f"[{i}/{len(keys)}] ")
                for status, n in frame["status"].value_counts().iter_rows():
                    counts[f"hours_{status}"] = counts.get(f"hours_{status}", 0) + n
                yield key, frame

    return PartitionStream(produce(), summary=lambda: dict(counts))


class SourceOnDemand:
    """The Dukascopy source, opened at the first symbol-day that needs it (a range of vendor symbols never
    does, so it runs without any datafeed configured) and closed once, however the run ends."""

    def __init__(self, resource: DukascopyResource):
        self._resource = resource
        self._source: DukascopySource | None = None

    def __call__(self) -> DukascopySource:
        if self._source is None:
            self._source = self._resource.source()
        return self._source

    def __enter__(self) -> "SourceOnDemand":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._source is not None:
            self._source.close()


def fetch_raw_day(context, source: SourceOnDemand, store, key: str, progress: str = "") -> pl.DataFrame:
    """Fetch one symbol-day from the source into the raw zone, with progress in the run's log."""
    day, symbol = split_key(key)
    if instrument(symbol).source != "dukascopy":
        context.log.info(f"{progress}{symbol} has no Dukascopy feed (vendor symbol): nothing to fetch for {day}")
        return pl.DataFrame(schema=RAW_HOURS_SCHEMA)
    feed = source()
    frame = ingest.fetch_raw_day(store, feed, symbol, date.fromisoformat(day))
    expected = set(expected_hours(symbol, date.fromisoformat(day)))
    missing_open = expected & set(frame.filter(pl.col("status") == "missing")["hour"].to_list())
    if expected and missing_open == expected:
        # A wrong mirror URL answers 404 for everything, which looks exactly like "no data".
        context.log.warning(f"{symbol} {day}: every trading hour is missing at {feed.base}: is the source right?")
    context.log.info(
        f"{progress}{symbol} {day}: "
        + ", ".join(f"{n} {s}" for s, n in sorted(frame["status"].value_counts().iter_rows()))
        + f" from {feed.base}"
    )
    return frame


@daily_dataset_asset("ticks", "ingest", ins={"raw_dukascopy": dg.AssetIn(metadata={ALLOW_MISSING_KEY: True})})
def ticks(
    context: dg.AssetExecutionContext, raw_dukascopy: PartitionInputs, lake: LakeResource, dukascopy: DukascopyResource
) -> PartitionStream:
    """Decode the raw hours (BI5 or API responses, by each hour's feed) into normalized ticks; bad hours and
    bad ticks go to quarantine.

    A symbol-day not yet in the raw zone is fetched through the source first (read-through), so
    ``ticks`` alone can be materialized on a fresh lake; that fetch is recorded as a materialization
    of ``raw_dukascopy``.
    """
    store = lake.lake()
    totals = {"quarantined_ticks": 0, "quarantined_hours": 0}

    def produce():
        with SourceOnDemand(dukascopy) as source:
            for i, key in enumerate(raw_dukascopy.keys, 1):
                day, symbol = split_key(key)
                hours = raw_dukascopy.get(key)
                if hours is None:
                    hours = fetch_raw_day(context, source, store, key, "read-through: ")
                    info = store.write("raw_dukascopy", ingest.day_partition(symbol, day), hours)
                    context.log_event(dg.AssetMaterialization(
                        asset_key="raw_dukascopy", partition=key,
                        metadata={"rows": info.rows, "sha256": info.sha256, "fetched_by": "ticks (read-through)"},
                    ))
                good, quarantine = ingest.ticks_from_raw(store, symbol, date.fromisoformat(day), hours)
                hour_problems = quarantine.filter(pl.col("source") != "decoded ticks").height
                totals["quarantined_hours"] += hour_problems
                totals["quarantined_ticks"] += quarantine.height - hour_problems
                if quarantine.height:
                    context.log.warning(f"{symbol} {day}: quarantined {quarantine.height} record(s): "
                                        + "; ".join(quarantine["reason"].unique().to_list()[:5]))
                context.log.info(f"[{i}/{len(raw_dukascopy)}] {symbol} {day}: {good.height} ticks")
                yield key, good

    return PartitionStream(produce(), summary=lambda: dict(totals))

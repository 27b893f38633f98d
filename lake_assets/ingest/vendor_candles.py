"""The vendor's own candles: ``vendor_candles_1m`` (BID and ASK minutes), ``_1h`` and ``_1d`` per
symbol-day, fetched through the Dukascopy feed in use (the API's candle endpoints, or BI5 candle files)."""

from datetime import date

import dagster as dg

from lake_assets.ingest.assets import SourceOnDemand
from lake_assets.metadata import daily_dataset_asset
from lake_assets.partitions import split_key
from lake_resources.catalog.instruments import instrument
from lake_resources.dagster_io import DukascopyResource, LakeResource, PartitionStream
from lake_resources.sources.dukascopy.candles import KINDS, empty_candles, fetch_vendor_candles


def _candles_asset(name: str):
    kind = KINDS[name]

    @daily_dataset_asset(name, "ingest", extra_kinds={"dukascopy"}, pool="warm_writer")
    def _asset(context: dg.AssetExecutionContext, dukascopy: DukascopyResource, lake: LakeResource) -> PartitionStream:
        store = lake.lake()
        counts = {"candles": 0}

        def produce():
            with SourceOnDemand(dukascopy) as source:
                for i, key in enumerate(context.partition_keys, 1):
                    day, symbol = split_key(key)
                    if instrument(symbol).source != "dukascopy":
                        yield key, empty_candles()
                        continue
                    frame, notes = fetch_vendor_candles(store, source(), symbol, date.fromisoformat(day), kind)
                    counts["candles"] += frame.height
                    context.log.info(f"[{i}/{len(context.partition_keys)}] {symbol} {day}: {frame.height} {kind} "
                                     f"candles; " + "; ".join(notes))
                    yield key, frame

        return PartitionStream(produce(), summary=lambda: dict(counts))

    return _asset


vendor_candles_1m = _candles_asset("vendor_candles_1m")
vendor_candles_1h = _candles_asset("vendor_candles_1h")
vendor_candles_1d = _candles_asset("vendor_candles_1d")

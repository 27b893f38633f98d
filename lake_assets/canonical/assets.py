"""Canonical tables researchers query every day: minute bars and their roll-ups."""


import dagster as dg
import polars as pl

from lake_assets.ingest.vendor import (
    FEED_DIGESTS_METADATA,
    capture_and_store,
    feed_digests,
    vendor_connectors,
    vendor_minute_bars,
)
from lake_assets.metadata import daily_dataset_asset
from lake_assets.partitions import split_key
from lake_resources.catalog.instruments import instrument
from lake_resources.dagster_io import ALLOW_MISSING_KEY, LakeResource, PartitionInputs, PartitionStream
from lake_resources.transforms.bars import empty_bars, minute_bars, rollup


def combine_bars(tick_bars: pl.DataFrame, vendor_bars: pl.DataFrame) -> pl.DataFrame:
    """Tick-built bars as they are, plus vendor bars for the minutes ticks do not cover.

    Columns a source lacks are null (the uniform view); extra vendor columns are kept.
    """
    if vendor_bars.height == 0:
        return tick_bars
    if tick_bars.height == 0:
        return vendor_bars
    extra = vendor_bars.join(tick_bars.select("symbol", "ts"), on=["symbol", "ts"], how="anti")
    return pl.concat([tick_bars, extra], how="diagonal_relaxed").sort("symbol", "ts", maintain_order=True)


@daily_dataset_asset(
    "bars_1m",
    "canonical",
    code_version="2",
    ins={
        "ticks": dg.AssetIn(metadata={ALLOW_MISSING_KEY: True}),
        "raw_vendor": dg.AssetIn(metadata={ALLOW_MISSING_KEY: True}),
    },
    pool="warm_writer",
)
def bars_1m(
    context: dg.AssetExecutionContext, ticks: PartitionInputs, raw_vendor: PartitionInputs, lake: LakeResource
) -> PartitionStream:
    """Minute bars on mid with bid/ask OHLC built from each day's ticks, plus vendor minute bars
    (from the ``raw_vendor`` pulls) in the same uniform view for the minutes ticks do not cover.

    A vendor symbol-day whose pulls were never captured is captured first (read-through), recorded
    as a materialization of ``raw_vendor``.
    """
    store = lake.lake()
    counts = {"tick_bars": 0, "vendor_bars": 0}

    def produce():
        connectors = None
        for i, key in enumerate(ticks.keys, 1):
            day, symbol = split_key(key)
            vendor_symbol = instrument(symbol).source == "vendor"
            day_ticks = ticks.get(key)
            if day_ticks is None and not vendor_symbol:
                raise dg.Failure(
                    f"bars_1m {key}: no ticks stored for {symbol} {day}; materialize ticks for this partition first"
                )
            index = raw_vendor.get(key)
            if index is None and vendor_symbol:
                connectors = connectors if connectors is not None else vendor_connectors(lake.settings(), context.log)
                index = capture_and_store(context, store, connectors, key, "read-through: ")
                info = store.write("raw_vendor", (("symbol", symbol), ("date", day)), index)
                context.log_event(dg.AssetMaterialization(
                    asset_key="raw_vendor", partition=key,
                    metadata={"rows": info.rows, "sha256": info.sha256, "fetched_by": "bars_1m (read-through)",
                              FEED_DIGESTS_METADATA: dg.MetadataValue.json(feed_digests(index))},
                ))
            tick_bars = minute_bars(day_ticks) if day_ticks is not None else empty_bars()
            from_vendor = vendor_minute_bars(store, index)
            bars = combine_bars(tick_bars, from_vendor)
            counts["tick_bars"] += tick_bars.height
            counts["vendor_bars"] += bars.height - tick_bars.height
            context.log.info(
                f"[{i}/{len(ticks)}] {key}: {bars.height} minute bars "
                f"({tick_bars.height} from {0 if day_ticks is None else day_ticks.height} ticks, "
                f"{bars.height - tick_bars.height} from vendor pulls)"
            )
            yield key, bars

    return PartitionStream(produce(), summary=lambda: dict(counts))


def _rollup_asset(name: str, every: str):
    @daily_dataset_asset(name, "canonical", ins={"bars_1m": dg.AssetIn()}, pool="warm_writer")
    def _asset(context: dg.AssetExecutionContext, bars_1m: PartitionInputs) -> PartitionStream:
        def produce():
            for key, minute in bars_1m:
                yield key, rollup(minute, every)

        return PartitionStream(produce())

    return _asset


bars_5m = _rollup_asset("bars_5m", "5m")
bars_1h = _rollup_asset("bars_1h", "1h")
bars_1d = _rollup_asset("bars_1d", "1d")

"""Canonical tables researchers query every day: minute bars and their roll-ups."""


import dagster as dg
import polars as pl

from lake_assets.metadata import OWNERS, dataset_description, dataset_kinds, dataset_metadata
from lake_assets.partitions import date_symbol_partitions
from lake_resources.resources import PartitionInputs, PartitionStream
from lake_resources.transforms.bars import minute_bars, rollup


@dg.asset(
    partitions_def=date_symbol_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="canonical",
    metadata=dataset_metadata("bars_1m"),
    kinds=dataset_kinds("bars_1m"),
    owners=OWNERS,
    code_version="1",
    description=dataset_description("bars_1m"),
    pool="warm_writer",
)
def bars_1m(context: dg.AssetExecutionContext, ticks: PartitionInputs) -> PartitionStream:
    """Minute bars on mid with bid/ask OHLC, built from each day's ticks."""

    def produce():
        for i, (key, day_ticks) in enumerate(ticks, 1):
            bars = minute_bars(day_ticks)
            context.log.info(f"[{i}/{len(ticks)}] {key}: {bars.height} minute bars from {day_ticks.height} ticks")
            yield key, bars

    return PartitionStream(produce())


def _rollup_asset(name: str, every: str):
    @dg.asset(
        name=name,
        partitions_def=date_symbol_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="canonical",
        metadata=dataset_metadata(name),
        kinds=dataset_kinds(name),
        owners=OWNERS,
        code_version="1",
        description=dataset_description(name),
        ins={"bars_1m": dg.AssetIn()},
        pool="warm_writer",
    )
    def _asset(context: dg.AssetExecutionContext, bars_1m: PartitionInputs) -> PartitionStream:
        def produce():
            for key, minute in bars_1m:
                yield key, rollup(minute, every)

        return PartitionStream(produce())

    return _asset


bars_5m = _rollup_asset("bars_5m", "5m")
bars_1h = _rollup_asset("bars_1h", "1h")
bars_1d = _rollup_asset("bars_1d", "1d")

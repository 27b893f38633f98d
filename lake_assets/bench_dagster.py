"""The Dagster side of ``lake bench``'s backfill figure: the daily ingest graph run as one in-process
single-run backfill. It lives in the Dagster layer because it drives ``lake_assets.definitions``;
``lake bench`` (``lake_assets.cli``) hands it to the library bench, which never imports this layer."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

SELECTION = ("raw_dukascopy", "ticks", "bars_1m")


def dagster_backfill(lake_home: Path, feed_dir: Path, symbol: str, days: list[date]) -> None:
    """Ours: one in-process single-run Dagster backfill of raw_dukascopy -> ticks -> bars_1m."""
    import dagster as dg

    with warnings.catch_warnings():  # beta/preview notices of the asset definitions: not the benchmark's output
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        from lake_assets.definitions import defs
    from lake_assets.partitions import date_symbol_partitions
    from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource

    symbols = date_symbol_partitions.get_partitions_def_for_dimension("symbol").get_partition_keys()
    if symbol not in symbols:
        raise ValueError(f"benchmark symbol {symbol} is not in the configured universe LAKE_SYMBOLS={','.join(symbols)}")
    lake = LakeResource(home=str(lake_home))
    resources = {
        "lake": lake,
        "io_manager": LakeIOManager(lake=lake),
        "dukascopy": DukascopyResource(feed="datafeed", url=Path(feed_dir).resolve().as_uri(), lake=lake),
    }
    tags = {
        "dagster/asset_partition_range_start": f"{days[0].isoformat()}|{symbol}",
        "dagster/asset_partition_range_end": f"{days[-1].isoformat()}|{symbol}",
    }
    with dg.DagsterInstance.ephemeral() as instance, warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        result = dg.materialize(
            list(defs.assets), selection=list(SELECTION), tags=tags, resources=resources, instance=instance,
            raise_on_error=True, run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    if not result.success:
        raise RuntimeError(f"Dagster backfill of {symbol} {days[0]}..{days[-1]} failed")

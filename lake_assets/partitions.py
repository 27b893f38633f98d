"""Partitions, defined once and shared by every domain.

Daily partitions are UTC days; the symbol dimension is the configured universe (``LAKE_SYMBOLS``),
static so that ``dagster asset materialize --partition 2019-02-04|EURUSD`` works on a fresh instance.
Multi-partition keys read ``{date}|{symbol}`` (Dagster sorts dimensions by name).
"""

from __future__ import annotations

import dagster as dg

from lake_resources.settings import LakeSettings

SETTINGS = LakeSettings.from_env()

# LAKE_TODAY_PARTITION=on: the current UTC day is a partition too (end_offset=1), fetched during the day
date_partitions = dg.DailyPartitionsDefinition(start_date=SETTINGS.start_date, timezone="UTC",
                                               end_offset=1 if SETTINGS.today_partition else 0)
symbol_partitions = dg.StaticPartitionsDefinition(list(SETTINGS.symbols))
date_symbol_partitions = dg.MultiPartitionsDefinition({"date": date_partitions, "symbol": symbol_partitions})

#: Symbols seen in the landing area that are not (yet) in the configured universe.
discovered_symbols = dg.DynamicPartitionsDefinition(name="discovered_symbols")
#: One partition per strategy spec version or sweep point.
strategy_runs = dg.DynamicPartitionsDefinition(name="strategy_runs")


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``"2019-02-04|EURUSD"`` -> ``("2019-02-04", "EURUSD")``."""
    dims = date_symbol_partitions.get_partition_key_from_str(str(key)).keys_by_dimension
    return dims["date"], dims["symbol"]


#: Assets fed by the Dukascopy datafeed alone: a vendor-only symbol (e.g. AAPL) has nothing there, so
#: ``lake demo`` and ``lake backfill`` never plan these partitions for it (no empty tick partitions).
DUKASCOPY_ONLY_ASSETS = frozenset({"raw_dukascopy", "ticks", "vendor_candles_1m", "vendor_candles_1h", "vendor_candles_1d"})


def symbol_has_asset(asset_name: str, symbol: str) -> bool:
    """Does ``symbol`` have partitions of the asset ``asset_name`` (False: a vendor symbol's ticks)?"""
    if asset_name not in DUKASCOPY_ONLY_ASSETS:
        return True
    from lake_resources.catalog.instruments import UnknownSymbolError, instrument

    try:
        return instrument(symbol).source == "dukascopy"
    except UnknownSymbolError:
        return True  # unknown instruments are refused elsewhere, with their own message

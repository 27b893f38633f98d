"""``matches_vendor_candles`` on ``bars_1m``, ``bars_1h`` and ``bars_1d``: our bars equal Dukascopy's own
candles (``vendor_candles_*``): OHLC exact on points, both sides; volume within the stated tolerance
(:mod:`lake_resources.sources.dukascopy.candles`). Every differing period is listed in the result's metadata.

A partition whose vendor candles are not stored (or are empty, or whose symbol has no Dukascopy feed)
is not compared: the result passes with severity WARN and says so (``compared: false``).
"""


import dagster as dg

from lake_assets.canonical.assets import bars_1d, bars_1h, bars_1m
from lake_assets.canonical.checks import CHECKSUM, DUPLICATES, SCHEMA, TIMESTAMPS, _md, _targets, build_dataset_checks
from lake_assets.ingest.vendor_candles import vendor_candles_1d, vendor_candles_1h, vendor_candles_1m
from lake_assets.partitions import split_key
from lake_resources.catalog.instruments import instrument
from lake_resources.dagster_io import LakeResource
from lake_resources.sources.dukascopy.candles import (
    BAR_CANDLES,
    VOLUME_ABS_TOLERANCE,
    VOLUME_REL_TOLERANCE,
    compare_bars,
)
from lake_resources.storage import PartitionNotFound

CHECK_NAME = "matches_vendor_candles"
MAX_LISTED = 200
_ASSETS = {"bars_1m": bars_1m, "bars_1h": bars_1h, "bars_1d": bars_1d}


def evaluate(store, bars_name: str, key: str) -> tuple[bool, str, str, dict]:
    """(passed, severity, description, metadata) of one partition."""
    day, symbol = split_key(key)
    partition = (("symbol", symbol), ("date", day))
    candles_name = BAR_CANDLES[bars_name]
    if instrument(symbol).source != "dukascopy":
        return True, "WARN", f"{symbol} has no Dukascopy feed: no vendor candles to compare", {"compared": False}
    try:
        candles = store.read_partition(candles_name, partition)
    except PartitionNotFound:
        candles = None
    if candles is None or candles.height == 0:
        return True, "WARN", (f"no {candles_name} stored for {symbol} {day}: not compared (materialize "
                              f"{candles_name} to hold {bars_name} to the vendor)"), {"compared": False}
    try:
        bars = store.read_partition(bars_name, partition)
    except PartitionNotFound as exc:
        return False, "ERROR", f"cannot read {bars_name}: {exc}", {"compared": False}
    point = 1.0 / instrument(symbol).decimal_factor
    result = compare_bars(bars, candles, point)
    meta = {
        "compared": True, "periods_compared": result.compared, "differing_periods": result.differing.height,
        "ohlc_differences": result.ohlc_differences, "volume_differences": result.volume_differences,
        "missing_in_bars": result.missing_in_bars, "missing_in_candles": result.missing_in_candles,
        "volume_tolerance": f"|ours - vendor| <= {VOLUME_REL_TOLERANCE:g} x vendor + {VOLUME_ABS_TOLERANCE:g} (millions)",
    }
    if result.differing.height:
        meta["differing"] = _md(result.differing, MAX_LISTED)
        meta["differing_ts"] = [str(t) for t in result.differing["ts"].head(MAX_LISTED)]
    if result.passed:
        return True, "ERROR", f"{bars_name} equal the vendor's candles in all {result.compared} periods", meta
    only_volume = result.ohlc_differences == 0 and not result.missing_in_bars and not result.missing_in_candles
    return False, "WARN" if only_volume else "ERROR", (
        f"{result.differing.height} of {bars_name}'s periods differ from the vendor's candles "
        f"({result.ohlc_differences} OHLC, {result.volume_differences} volume, {result.missing_in_bars} without a "
        f"bar, {result.missing_in_candles} without a candle)"), meta


_SPECS = {
    name: dg.AssetCheckSpec(
        CHECK_NAME, asset=asset.key, partitions_def=asset.partitions_def,
        description=f"{name} equal Dukascopy's own candles ({BAR_CANDLES[name]}): OHLC exact on points, "
        f"volume within {VOLUME_REL_TOLERANCE:g} x + {VOLUME_ABS_TOLERANCE:g} million; differing periods listed.",
        metadata={"lake/dataset": name, "lake/check_kind": "vendor_candles"},
    )
    for name, asset in _ASSETS.items()
}


@dg.multi_asset_check(specs=list(_SPECS.values()), name="check_bars_vs_vendor_candles", can_subset=True,
                      description="Bars against the vendor's own candles")
def bars_vs_vendor_candles(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    store = lake.lake()
    keys = list(context.partition_keys)
    for name, spec in _SPECS.items():
        if spec.key not in context.selected_asset_check_keys:
            continue
        yield dg.Output(None, output_name=spec.get_python_identifier())
        targets = _targets(context.instance, spec.asset_key, keys)
        for key in keys:
            try:
                passed, severity, description, meta = evaluate(store, name, key)
            except Exception as exc:  # noqa: BLE001 - a check that crashed still reports, as a failure
                passed, severity, description, meta = False, "ERROR", f"check could not run: {type(exc).__name__}: {exc}", {}
            if not passed:
                context.log.warning(f"{name} {key}: {description}")
            yield dg.AssetCheckEvaluation(
                asset_key=spec.asset_key, check_name=CHECK_NAME, passed=passed, metadata=meta,
                target_materialization_data=targets.get(key),
                severity=dg.AssetCheckSeverity.WARN if severity == "WARN" else dg.AssetCheckSeverity.ERROR,
                description=f"{key}: {description}", partition=key,
            )


VENDOR_CHECKS = [
    bars_vs_vendor_candles,
    *[build_dataset_checks(asset, asset.key.path[-1], (SCHEMA, TIMESTAMPS, DUPLICATES, CHECKSUM),
                           duplicate_keys=("symbol", "ts"))
      for asset in (vendor_candles_1m, vendor_candles_1h, vendor_candles_1d)],
]

import dagster as dg

from lake_assets.ingest import assets, sensors, vendor, vendor_candles

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets, vendor, vendor_candles]),
    sensors=[sensors.vendor_landing_sensor],
)

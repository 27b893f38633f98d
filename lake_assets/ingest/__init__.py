import dagster as dg

from lake_assets.ingest import assets, sensors, vendor

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets, vendor]),
    sensors=[sensors.vendor_landing_sensor],
)

import dagster as dg

from lake_assets.ingest import assets

defs = dg.Definitions(assets=dg.load_assets_from_modules([assets]))

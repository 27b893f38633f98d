import dagster as dg

from lake_assets.canonical import assets

defs = dg.Definitions(assets=dg.load_assets_from_modules([assets]))

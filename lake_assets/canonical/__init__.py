import dagster as dg

from lake_assets.canonical import assets, checks, vendor_checks

defs = dg.Definitions(assets=dg.load_assets_from_modules([assets]), asset_checks=[*checks.CHECKS, *vendor_checks.VENDOR_CHECKS])

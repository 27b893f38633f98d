import dagster as dg

from lake_assets.research import assets, checks, sensors

defs = dg.Definitions(
    assets=[assets.features, assets.heuristic_defs, assets.backtests, assets.leaderboard],
    asset_checks=checks.CHECKS,
    sensors=[sensors.strategy_specs_sensor],
)

"""Asset checks of the research datasets, from the shared factory (``lake_assets.canonical.checks``).

``features`` has a pandera schema (keys typed, one row per symbol and ts, in time order); the other
research tables have no schema yet, so they get the key-uniqueness and checksum checks.
"""


import dagster as dg

from lake_assets.canonical.checks import CHECKSUM, DUPLICATES, SCHEMA, TIMESTAMPS, build_dataset_checks
from lake_assets.partitions import strategy_runs
from lake_assets.research.assets import features, heuristic_defs, leaderboard

CHECKS: list[dg.AssetChecksDefinition] = [
    build_dataset_checks(features, "features", (SCHEMA, TIMESTAMPS, DUPLICATES, CHECKSUM), duplicate_keys=("symbol", "ts")),
    build_dataset_checks(heuristic_defs, "heuristic_defs", (DUPLICATES, CHECKSUM), duplicate_keys=("id",)),
    build_dataset_checks("backtest_runs", "backtest_runs", (DUPLICATES, CHECKSUM), partitions_def=strategy_runs,
                         duplicate_keys=("run", "symbol")),
    build_dataset_checks("backtest_trades", "backtest_trades", (DUPLICATES, CHECKSUM), partitions_def=strategy_runs,
                         duplicate_keys=("symbol", "entry_ts")),
    build_dataset_checks("backtest_equity", "backtest_equity", (DUPLICATES, CHECKSUM), partitions_def=strategy_runs,
                         duplicate_keys=("symbol", "ts")),
    build_dataset_checks("signal_matches", "signal_matches", (DUPLICATES, CHECKSUM), partitions_def=strategy_runs,
                         duplicate_keys=("spec_id", "symbol", "ts")),
    build_dataset_checks(leaderboard, "leaderboard", (DUPLICATES, CHECKSUM), duplicate_keys=("spec_id", "symbol")),
]

"""Research assets: the feature store, the heuristics registry, backtests and the leaderboard.

The transformations are the plain functions of ``lake_resources.research``; this module wires them to
partitions, the lake and lineage.

- ``features`` (date x symbol): a day's minute bars plus a history tail from the days before it (a
  ``-1..0`` day partition mapping, so the UI shows the dependency; when the previous day has no bars
  or too few, the tail walks back through the lake over at most :data:`HISTORY_SEARCH_DAYS` days), so
  indicators do not reset at midnight. ``code_version`` is the feature set's version; each partition
  stores and reports the SHA-256 of every bars partition it read, and a content-derived data version.
- ``heuristic_defs``: every run (spec version or sweep point) ever seen in ``strategies/``, with the
  time it was first seen; registers each run id as a ``strategy_runs`` partition.
- ``backtests`` (``strategy_runs``): one backtest per run over a date range and symbols, writing
  ``backtest_runs`` (summary and lineage), ``backtest_trades``, ``backtest_equity`` and
  ``signal_matches``, each row carrying the run id in ``run``.
- ``leaderboard``: every stored run ranked by a metric (Sharpe by default), with precision/recall/F1
  for heuristics that have labelled events.

Modules: ``common``, ``feature_store`` (``features``), ``registry`` (``heuristic_defs``), ``backtesting``
(``backtests``), ``ranking`` (``leaderboard``). Everything is re-exported here.
"""

from lake_assets.research.assets.backtesting import (
    BACKTEST_AUTOMATION,
    LEADERBOARD_AUTOMATION,
    BacktestConfig,
    backtest_one,
    backtests,
    resolve_run,
    run_from_json,
    summary_frame,
)
from lake_assets.research.assets.common import (
    BACKTEST_CODE_VERSION,
    BACKTEST_END_ENV,
    BACKTEST_OUTPUTS,
    BACKTEST_START_ENV,
    HISTORY_SEARCH_DAYS,
    LEADERBOARD_CODE_VERSION,
    REPO_ROOT,
    STRATEGIES_ENV,
    SUMMARY_COLUMNS,
    table_metadata,
)
from lake_assets.research.assets.feature_store import (
    SAME_AND_PREVIOUS_DAY,
    FeaturePlan,
    build_features_asset,
    feature_registry_markdown,
    features,
    plan_features,
)
from lake_assets.research.assets.ranking import (
    LABEL_SUFFIXES,
    LeaderboardConfig,
    build_leaderboard,
    label_files,
    label_scores,
    leaderboard,
    load_labels,
)
from lake_assets.research.assets.registry import (
    StrategiesConfig,
    heuristic_defs,
    load_runs,
    register_strategy_runs,
    stored_table,
    strategies_directory,
)

__all__ = [
    "BACKTEST_AUTOMATION",
    "BACKTEST_CODE_VERSION",
    "BACKTEST_END_ENV",
    "BACKTEST_OUTPUTS",
    "BACKTEST_START_ENV",
    "BacktestConfig",
    "FeaturePlan",
    "HISTORY_SEARCH_DAYS",
    "LABEL_SUFFIXES",
    "LEADERBOARD_AUTOMATION",
    "LEADERBOARD_CODE_VERSION",
    "LeaderboardConfig",
    "REPO_ROOT",
    "SAME_AND_PREVIOUS_DAY",
    "STRATEGIES_ENV",
    "SUMMARY_COLUMNS",
    "StrategiesConfig",
    "backtest_one",
    "backtests",
    "build_features_asset",
    "build_leaderboard",
    "feature_registry_markdown",
    "features",
    "heuristic_defs",
    "label_files",
    "label_scores",
    "leaderboard",
    "load_labels",
    "load_runs",
    "plan_features",
    "register_strategy_runs",
    "resolve_run",
    "run_from_json",
    "stored_table",
    "strategies_directory",
    "summary_frame",
    "table_metadata",
]

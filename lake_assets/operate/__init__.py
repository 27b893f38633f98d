"""Operating the lake from the command line: the main job (``lake demo``), backfills (``lake backfill``)
and the UI (``lake ui``).

- :func:`run_demo` generates sample vendor data and materializes every asset of the ``ingest``,
  ``canonical`` and ``research`` groups through Dagster, group by group, as partition-range runs
  (one per symbol), on the lake's own Dagster instance; partitions already materialized with the
  current code version (and present in the lake) are skipped, so a second run is fast.
- :func:`run_backfill` submits a real Dagster asset backfill (the same object the UI creates) and
  follows it until it ends. If a daemon is running on the instance (``lake ui``), it does the work;
  otherwise this command runs the daemon's backfill and run-queue iterations itself, so runs are
  launched exactly as the daemon launches them (queued, pools and ``max_concurrent_runs`` honoured,
  one subprocess per run, one run per symbol range thanks to single-run backfill policies).
- :func:`run_ui` starts ``dagster dev`` (webserver + daemon) on the lake's ``DAGSTER_HOME`` and stops
  it cleanly on Ctrl-C / SIGTERM.

Modules: ``common``, ``planning``, ``summaries``, ``demo``, ``backfill``, ``ui``. Everything is
re-exported here.
"""

from lake_assets.operate.backfill import run_backfill
from lake_assets.operate.common import (
    DEMO_GROUPS,
    DEMO_LAST_DAY,
    DEMO_SEED,
    LEADERBOARD_COLUMNS,
    QUIET_RUN_CONFIG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    SILENT_RUN_CONFIG,
    Say,
    calendar_days,
    contiguous_ranges,
    lake_resources_for,
    parse_symbols,
    quiet_dagster,
    trading_days,
)
from lake_assets.operate.demo import run_demo
from lake_assets.operate.planning import (
    PlannedRun,
    RunProgress,
    Step,
    demo_steps,
    plan_runs,
    step_partitions,
    up_to_date,
)
from lake_assets.operate.summaries import CheckSummary, check_summaries, format_check_summaries
from lake_assets.operate.ui import run_ui, ui_command
from lake_resources.lakeconfig import record_demo_config

__all__ = [
    "CheckSummary",
    "DEMO_GROUPS",
    "DEMO_LAST_DAY",
    "DEMO_SEED",
    "LEADERBOARD_COLUMNS",
    "PlannedRun",
    "QUIET_RUN_CONFIG",
    "RANGE_END_TAG",
    "RANGE_START_TAG",
    "RunProgress",
    "SILENT_RUN_CONFIG",
    "Say",
    "Step",
    "calendar_days",
    "check_summaries",
    "contiguous_ranges",
    "demo_steps",
    "format_check_summaries",
    "lake_resources_for",
    "parse_symbols",
    "plan_runs",
    "quiet_dagster",
    "record_demo_config",
    "run_backfill",
    "run_demo",
    "run_ui",
    "step_partitions",
    "trading_days",
    "ui_command",
    "up_to_date",
]

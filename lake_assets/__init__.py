"""quant-lake's Dagster definitions: assets, checks, sensors and schedules, grouped by domain."""

import warnings

import dagster as dg

# Backfill policies and pools are marked beta in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

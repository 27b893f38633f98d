"""The one ``Definitions`` of quant-lake, assembled from small per-domain modules."""

from __future__ import annotations

import os
import sys
import warnings

import dagster as dg

# Backfill policies and pools are marked beta in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from lake_assets import automation as operations
from lake_assets import canonical, ingest, lifecycle, research
from lake_assets.resources import RESOURCES

# with_operations: the daily schedule, automation conditions and freshness policies (operations/).
defs = operations.with_operations(dg.Definitions.merge(
    ingest.defs,
    canonical.defs,
    research.defs,
    lifecycle.defs,
    operations.defs,
    dg.Definitions(resources=RESOURCES),
))

if not os.environ.get("DAGSTER_HOME") and os.path.basename(sys.argv[0]) == "dagster":
    # plain `dagster` without DAGSTER_HOME runs in a throwaway instance: nobody would see the run
    print('quant-lake: DAGSTER_HOME is not set, so this command uses a throwaway Dagster instance and the UI '
          'will not show its runs; run `eval "$(lake env)"` first', file=sys.stderr)

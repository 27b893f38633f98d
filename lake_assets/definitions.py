"""The one ``Definitions`` of quant-lake, assembled from small per-domain modules."""

from __future__ import annotations

import warnings

import dagster as dg

# Backfill policies and pools are marked beta in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from lake_assets import canonical, ingest, lifecycle, operations, research
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

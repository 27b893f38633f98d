"""The one ``Definitions`` of quant-lake, assembled from small per-domain modules."""

from __future__ import annotations

import dagster as dg

from lake_assets import canonical, ingest, lifecycle, operations, research
from lake_assets.resources import RESOURCES

defs = dg.Definitions.merge(
    ingest.defs,
    canonical.defs,
    research.defs,
    lifecycle.defs,
    operations.defs,
    dg.Definitions(resources=RESOURCES),
)

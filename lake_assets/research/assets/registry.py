"""The ``heuristic_defs`` asset: strategy specs loaded from ``strategies/`` (``LAKE_STRATEGIES``), expanded
into runs and registered as ``strategy_runs`` partitions."""

import json
import os
from pathlib import Path
from typing import Optional

import dagster as dg
import polars as pl

from lake_assets.metadata import OWNERS, dataset_description, dataset_kinds, dataset_metadata
from lake_assets.partitions import strategy_runs
from lake_assets.research.assets.common import REPO_ROOT, STRATEGIES_ENV, _output, _utc_now, table_metadata
from lake_assets.research.lineage import (
    lineage_digest,
)
from lake_resources.dagster_io import LakeResource
from lake_resources.research import heuristics as hx
from lake_resources.storage import PartitionNotFound


# ----------------------------------------------------------------------------------------------
# Heuristics registry
# ----------------------------------------------------------------------------------------------
def strategies_directory(override: str | None = None) -> Path:
    """The spec directory: ``override``, else ``LAKE_STRATEGIES``, else ``<repo>/strategies``."""
    return Path(override or os.environ.get(STRATEGIES_ENV) or REPO_ROOT / "strategies").expanduser()


def load_runs(directory: Path) -> list[hx.RunSpec]:
    """Every run (grid point) of every spec in ``directory``; :class:`dg.Failure` naming file and field."""
    try:
        return [run for spec in hx.load_specs(directory) for run in hx.expand_grid(spec)]
    except hx.SpecError as exc:
        raise dg.Failure(
            description=f"invalid strategy spec: {exc}",
            metadata={"file": exc.source, "field": exc.field, "problem": exc.problem},
        ) from exc


def register_strategy_runs(instance: dg.DagsterInstance, strategies_dir: str | Path | None = None) -> list[str]:
    """Add every run id of the specs in ``strategies_dir`` to the ``strategy_runs`` partitions.

    Returns the run ids defined there, in file then grid order. Idempotent (known ids are skipped).
    """
    directory = Path(strategies_dir) if strategies_dir is not None else strategies_directory()
    # outside a run the plain SpecError ("file: field: problem") is the clearest error
    runs = [run for spec in hx.load_specs(directory) for run in hx.expand_grid(spec)]
    ids = list(dict.fromkeys(r.spec_id for r in runs))
    known = set(instance.get_dynamic_partitions(strategy_runs.name))
    new = [i for i in ids if i not in known]
    if new:
        instance.add_dynamic_partitions(strategy_runs.name, new)
    return ids


class StrategiesConfig(dg.Config):
    directory: Optional[str] = None  # default: LAKE_STRATEGIES, else <repo>/strategies


def stored_table(lake, name: str) -> pl.DataFrame | None:
    try:
        return lake.read_partition(name, ())
    except PartitionNotFound:
        return None


@dg.asset(
    group_name="research",
    metadata=dataset_metadata("heuristic_defs"),
    kinds=dataset_kinds("heuristic_defs") | {"yaml"},
    owners=OWNERS,
    code_version="1",
    description=dataset_description("heuristic_defs")
    + "\n\nLoaded from the spec files in `strategies/` (`LAKE_STRATEGIES`); a grid expands into one row per combination.",
    pool="warm_writer",
)
def heuristic_defs(context: dg.AssetExecutionContext, config: StrategiesConfig, lake: LakeResource) -> dg.Output[pl.DataFrame]:
    """Append the runs of the current spec files that were never seen; keep every earlier one."""
    directory = strategies_directory(config.directory)
    runs = load_runs(directory)
    store = lake.lake()
    stored = stored_table(store, "heuristic_defs")
    if stored is None:
        stored = pl.DataFrame(schema=hx.HEURISTIC_DEFS_SCHEMA)
    known = set(stored["id"].to_list())
    unique_runs = list({r.spec_id: r for r in runs}.values())
    fresh = [r for r in unique_runs if r.spec_id not in known]
    fresh_ids = {r.spec_id for r in fresh}
    table = pl.concat([stored.select(list(hx.HEURISTIC_DEFS_SCHEMA)), hx.heuristic_defs_rows(fresh, _utc_now())])
    ids = table["id"].to_list()
    registered = set(context.instance.get_dynamic_partitions(strategy_runs.name))
    if missing := [i for i in ids if i not in registered]:
        context.instance.add_dynamic_partitions(strategy_runs.name, missing)
    context.log.info(f"{len(unique_runs)} run(s) in {directory}: {len(fresh)} new; {table.height} version(s) stored")
    current = pl.DataFrame(
        {
            "id": [r.spec_id for r in unique_runs],
            "kind": [r.kind for r in unique_runs],
            "params": [json.dumps(r.params, sort_keys=True) for r in unique_runs],
            "new": ["yes" if r.spec_id in fresh_ids else "" for r in unique_runs],
        },
        schema={"id": pl.Utf8, "kind": pl.Utf8, "params": pl.Utf8, "new": pl.Utf8},
    )
    return _output(
        table,
        # Content-derived: the set of run ids (each id is a hash of its definition).
        data_version=dg.DataVersion(lineage_digest("heuristic_defs", json.dumps(sorted(ids)))),
        metadata={
            "strategies_dir": str(directory),
            "runs_in_directory": len(unique_runs),
            "new_runs": len(fresh),
            "versions_stored": table.height,
            "runs": table_metadata(current, ["id", "kind", "params", "new"], max_rows=100),
        },
    )

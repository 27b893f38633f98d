"""The strategies sensor: a changed ``strategies/`` directory -> new run partitions and a registry run.

Each tick fingerprints the spec files (names and contents). When the fingerprint differs from the
cursor, the sensor adds every new run id (spec version or sweep point) to the ``strategy_runs``
partitions and requests a ``heuristic_defs`` run keyed by the fingerprint (the registry records the
new versions with the time they were first seen). The backtests of new runs follow by their
automation condition (a newly added partition is backtested once). An invalid spec is reported as
the skip reason (file and field) and nothing is registered until the file is fixed. Stopped by
default: turn it on in the UI (Automation) to register specs as they are added.
"""


import hashlib
from pathlib import Path

import dagster as dg

from lake_assets.partitions import strategy_runs
from lake_assets.research.assets import heuristic_defs, strategies_directory
from lake_resources.research import heuristics as hx


def specs_fingerprint(directory: Path) -> str:
    """Digest of the spec files' names and contents (other files in the directory do not count)."""
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if path.is_file() and path.suffix in hx.SPEC_SUFFIXES:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


@dg.sensor(
    name="strategy_specs_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    target=[heuristic_defs],
    description="Registers new strategy runs (dynamic partitions) and refreshes heuristic_defs when strategies/ changes.",
)
def strategy_specs_sensor(context: dg.SensorEvaluationContext):
    directory = strategies_directory()
    fingerprint = specs_fingerprint(directory)
    if fingerprint == context.cursor:
        return dg.SkipReason(f"no change in {directory}")
    try:
        runs = [run for spec in hx.load_specs(directory) for run in hx.expand_grid(spec)]
    except hx.SpecError as exc:
        return dg.SensorResult(skip_reason=f"invalid strategy spec: {exc}", cursor=fingerprint)
    ids = list(dict.fromkeys(r.spec_id for r in runs))
    known = set(context.instance.get_dynamic_partitions(strategy_runs.name))
    new = [i for i in ids if i not in known]
    context.log.info(f"{len(ids)} run(s) in {directory}, {len(new)} new")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"heuristic_defs:{fingerprint}")],
        dynamic_partitions_requests=[strategy_runs.build_add_request(new)] if new else [],
        cursor=fingerprint,
    )

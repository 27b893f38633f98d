"""Planning runs: which assets (steps), over which partitions, in which partition-range runs; what is
already up to date; and ``RunProgress``, which follows a run's events."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from lake_assets.cli.common import DEMO_GROUPS, RANGE_END_TAG, RANGE_START_TAG, Say, contiguous_ranges


# ------------------------------------------------------------------------------------------
# Planning: which assets, in which runs, over which partitions
# ------------------------------------------------------------------------------------------
@dataclass
class Step:
    """Assets of one group sharing a partitions definition: materialized together, run by run."""

    group: str
    keys: list  # AssetKey, in topological order
    partitions_def: object | None
    policies: dict = field(default_factory=dict)  # AssetKey -> BackfillPolicy | None

    @property
    def names(self) -> list[str]:
        return [k.to_user_string() for k in self.keys]


@dataclass
class PlannedRun:
    label: str
    partition_keys: list[str | None]
    tags: dict[str, str] = field(default_factory=dict)
    partition_key: str | None = None
    keys: list | None = None  # the step's assets this run materializes (None: all of them)


def demo_steps(asset_graph, groups: Sequence[str] = DEMO_GROUPS) -> list[Step]:
    """The selected groups' assets in topological order, earlier groups first, cut into steps."""
    import heapq

    rank = {g: i for i, g in enumerate(groups)}
    selected = {k for k in asset_graph.materializable_asset_keys if asset_graph.get(k).group_name in rank}
    topo = {k: i for i, k in enumerate(asset_graph.toposorted_asset_keys)}
    parents = {k: {p for p in asset_graph.get(k).parent_keys if p in selected and p != k} for k in selected}
    children: dict = {k: set() for k in selected}
    for k, ps in parents.items():
        for p in ps:
            children[p].add(k)
    waiting = {k: len(ps) for k, ps in parents.items()}
    ready = [(rank[asset_graph.get(k).group_name], topo[k], k) for k, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, _, key = heapq.heappop(ready)
        order.append(key)
        for child in children[key]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (rank[asset_graph.get(child).group_name], topo[child], child))
    steps: list[Step] = []
    for key in order:
        node = asset_graph.get(key)
        if not (steps and steps[-1].group == node.group_name and steps[-1].partitions_def == node.partitions_def):
            steps.append(Step(node.group_name, [], node.partitions_def))
        steps[-1].keys.append(key)
        steps[-1].policies[key] = node.backfill_policy
    return steps


def _dimension_keys(pdef, name: str, days: Sequence[date], symbols: Sequence[str], instance) -> list[str]:
    import dagster as dg

    if isinstance(pdef, dg.TimeWindowPartitionsDefinition):
        valid = set(pdef.get_partition_keys())
        return [d.isoformat() for d in days if d.isoformat() in valid]
    if name == "symbol":
        valid = set(pdef.get_partition_keys())
        return [s for s in symbols if s in valid]
    if isinstance(pdef, dg.DynamicPartitionsDefinition):
        return list(pdef.get_partition_keys(dynamic_partitions_store=instance))
    return list(pdef.get_partition_keys())


def step_partitions(step: Step, days: Sequence[date], symbols: Sequence[str], instance) -> dict[str, list[str]]:
    """The step's partition keys inside the window, in lanes that can share a range run.

    ``date x symbol``: one group per symbol (ordered by date); other definitions: one group.
    """
    import dagster as dg

    pdef = step.partitions_def
    if pdef is None:
        return {"": []}
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        dims = {d.name: _dimension_keys(d.partitions_def, d.name, days, symbols, instance) for d in pdef.partitions_defs}
        if set(dims) == {"date", "symbol"}:
            return {s: [f"{d}|{s}" for d in dims["date"]] for s in dims["symbol"]}
        import itertools

        names = sorted(dims)
        return {"": ["|".join(combo) for combo in itertools.product(*(dims[n] for n in names))]}
    return {"": _dimension_keys(pdef, "", days, symbols, instance)}


def _in_lake(asset_graph, key, partition_keys: list[str], lake) -> set[str]:
    """Which of a date x symbol asset's partition keys the lake holds (all, if it stores no dataset)."""
    from lake_assets.partitions import split_key
    from lake_resources.catalog.datasets import DATASETS
    from lake_resources.dagster_io import DATASET_KEY

    meta = asset_graph.get(key).metadata or {}
    dataset = meta.get(DATASET_KEY)
    dataset = getattr(dataset, "value", dataset)
    spec = DATASETS.get(dataset) if dataset else None
    if spec is None or set(spec.partition_by) != {"symbol", "date"} or not partition_keys:
        return set(partition_keys)
    pairs = [split_key(k) for k in partition_keys]
    days = sorted(d for d, _ in pairs)
    located = lake.locate(spec, sorted({s for _, s in pairs}), date.fromisoformat(days[0]), date.fromisoformat(days[-1]))
    held = {(dict(loc.partition)["date"], dict(loc.partition)["symbol"]) for loc in located}
    return {k for k, pair in zip(partition_keys, pairs) if pair in held}


def _loading_context(instance):
    """The minimal LoadingContext Dagster's stale-status resolver needs outside a UI request."""
    from dagster._core.loader import LoadingContext

    class _Context(LoadingContext):
        @property
        def instance(self):
            return instance

        @property
        def loaders(self):
            return loaders

    loaders: dict = {}
    return _Context()


def up_to_date(instance, asset_graph, keys: Sequence, partition_keys: Sequence[str | None], lake=None) -> set[str | None]:
    """Partition keys for which every asset in ``keys`` is materialized with its current code
    version and unchanged upstream (Dagster's stale status FRESH) and, for lake datasets, present."""
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus

    resolver = CachingStaleStatusResolver(instance, asset_graph, _loading_context(instance))
    done = set(partition_keys)
    for key in keys:
        # a partition the asset does not have (a vendor symbol's ticks) is never materialized: not "to do"
        absent = {pk for pk in done if pk is not None and "|" in pk and not _has_partition(key, pk)}
        fresh = {pk for pk in done - absent if resolver.get_status(key, pk) == StaleStatus.FRESH}
        if lake is not None and fresh and None not in fresh:
            fresh &= _in_lake(asset_graph, key, sorted(fresh), lake)
        done &= fresh | absent
    return done


def _has_partition(asset_key, partition_key: str) -> bool:
    from lake_assets.partitions import split_key, symbol_has_asset

    return symbol_has_asset(asset_key.to_user_string(), split_key(partition_key)[1])


def plan_runs(step: Step, lanes: dict[str, list[str]], todo: set) -> list[PlannedRun]:
    """Range runs for single-run backfill policies (one per symbol and contiguous dates), else one
    run per partition."""
    if step.partitions_def is None:
        return [PlannedRun(label="", partition_keys=[None])] if None in todo else []
    single_run = all(
        p is not None and p.max_partitions_per_run is None for p in (step.policies.get(k) for k in step.keys)
    )
    runs = []
    for label, ordered in lanes.items():
        wanted = [k for k in ordered if k in todo]
        if not wanted:
            continue
        if single_run:
            for first, last in contiguous_ranges(ordered, wanted):
                keys = ordered[ordered.index(first): ordered.index(last) + 1]
                span = f"{first.split('|')[0]} → {last.split('|')[0]}" if "|" in first else f"{first} → {last}"
                runs.append(PlannedRun(
                    label=f"{label} {span}".strip(), partition_keys=keys,
                    tags={RANGE_START_TAG: first, RANGE_END_TAG: last}, keys=_run_keys(step, first),
                ))
        else:
            runs.extend(PlannedRun(label=k, partition_keys=[k], partition_key=k, keys=_run_keys(step, k)) for k in wanted)
    return [r for r in runs if r.keys is None or r.keys]


def _run_keys(step: Step, partition_key: str | None) -> list | None:
    """The step's assets that have ``partition_key``'s symbol (None: all of them)."""
    if partition_key is None or "|" not in partition_key:
        return None
    keys = [k for k in step.keys if _has_partition(k, partition_key)]
    return None if len(keys) == len(step.keys) else keys


class RunProgress(threading.Thread):
    """Prints each step of a run as it finishes, by following the run's events in the instance."""

    def __init__(self, instance, run_id: str, say: Say, indent: str = "      "):
        super().__init__(daemon=True)
        self.instance, self.run_id, self.say, self.indent = instance, run_id, say, indent
        self._stop_event = threading.Event()
        self._cursor = None
        self.failed: list[str] = []

    def run(self) -> None:
        while not self._stop_event.wait(0.5):
            self._drain()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self._drain()

    def _drain(self) -> None:
        from dagster import DagsterEventType

        try:
            conn = self.instance.get_records_for_run(
                self.run_id, cursor=self._cursor,
                of_type={DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE},
            )
        except Exception:  # the run's event log may not exist yet
            return
        for record in conn.records:
            event = record.event_log_entry.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.STEP_SUCCESS:
                seconds = event.event_specific_data.duration_ms / 1000
                self.say(f"{self.indent}{event.step_key:<24} ok     {seconds:6.1f}s")
            else:
                self.failed.append(event.step_key)
                error = event.event_specific_data.error
                message = error.message.strip().splitlines()[0] if error and error.message else "failed"
                self.say(f"{self.indent}{event.step_key:<24} FAILED {message[:160]}")
        self._cursor = conn.cursor

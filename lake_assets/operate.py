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
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from lake_assets.cli import REPO_ROOT, prepare_dagster_home
from lake_assets.watch import (
    DEFAULT_STALL_TIMEOUT_S,
    HEARTBEAT_MAX_AGE_S,
    daemon_running,
    describe_stall,
    fail_runs_with_dead_workers,
    failure_line,
    free_slots_of_ended_runs,
    outside_message,
)
from lake_resources.lakeconfig import record_demo_config

#: Groups the demo materializes, in this order (lifecycle moves data between tiers by its own policy).
DEMO_GROUPS = ("ingest", "canonical", "research")
#: Last day of the demo window: fixed, so the demo is reproducible.
DEMO_LAST_DAY = date(2019, 2, 15)
DEMO_SEED = 7
#: The console logger of every run we start: Dagster's DEBUG lines would bury our progress lines.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
#: Backfill runs print nothing (a failed step's traceback would bury the progress lines): ``lake
#: backfill`` prints one line per failed run instead, and the UI has the full logs.
SILENT_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
#: Leaderboard columns worth a terminal line (whichever exist), in this order.
LEADERBOARD_COLUMNS = ("rank", "spec_id", "symbol", "sharpe", "sortino", "total_return", "max_drawdown", "hit_rate",
                       "trade_count", "f1", "f1_basis")
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

Say = Callable[[str], None]


def _print(msg: str) -> None:
    print(msg, flush=True)


def quiet_dagster() -> None:
    """No beta/preview warnings or DEBUG lines from Dagster on our console."""
    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)
    logging.getLogger("dagster").setLevel(logging.WARNING)


def trading_days(end: date, count: int) -> list[date]:
    """The last ``count`` weekdays up to ``end``."""
    if count < 1:
        raise ValueError(f"need at least one trading day, got {count}")
    days: list[date] = []
    d = end
    while len(days) < count:
        if d.weekday() < 5:
            days.append(d)
        d -= timedelta(days=1)
    return sorted(days)


def calendar_days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def parse_symbols(symbols: str | Iterable[str], settings=None) -> list[str]:
    """Validated symbols of this lake's universe (``LAKE_SYMBOLS``), in the given order.

    An unknown instrument and a known one the lake does not ingest get different errors; the
    second names the exact command that adds it."""
    from lake_resources.settings import LakeSettings
    from lake_resources.validation import LakeValidationError, validate_symbol

    items = symbols.split(",") if isinstance(symbols, str) else list(symbols)
    chosen = list(dict.fromkeys(validate_symbol(s.strip().upper()) for s in items if s.strip()))
    if not chosen:
        raise LakeValidationError("no symbols given")
    return (settings or LakeSettings.from_env()).require_symbols(chosen)


def contiguous_ranges(ordered: Sequence[str], wanted: Iterable[str]) -> list[tuple[str, str]]:
    """Maximal runs of consecutive ``ordered`` keys that are all ``wanted``, as (first, last)."""
    want = set(wanted)
    ranges: list[tuple[str, str]] = []
    first = last = None
    for key in ordered:
        if key in want:
            first = first or key
            last = key
        elif first is not None:
            ranges.append((first, last))
            first = last = None
    if first is not None:
        ranges.append((first, last))
    return ranges


def lake_resources_for(settings, *, dukascopy_url: str | None = None, dukascopy_feed: str | None = None,
                       dukascopy_api: str | None = None) -> dict:
    """Dagster resources pointing at ``settings``' lake; secrets stay ``EnvVar`` references. The
    Dukascopy feed and bases default to the settings' (``LAKE_DUKASCOPY_FEED``/``_API``/``_URL``)."""
    import dagster as dg

    from lake_resources.resources import DukascopyResource, LakeIOManager, LakeResource

    def secret(name: str):
        return dg.EnvVar(name) if os.environ.get(name) else None

    verify = settings.s3_verify
    lake = LakeResource(
        home=str(settings.home_abs),
        s3_endpoint=settings.s3_endpoint,
        s3_bucket=settings.s3_bucket,
        s3_prefix=settings.s3_prefix,
        s3_region=settings.s3_region,
        s3_verify=verify if isinstance(verify, str) else ("true" if verify else "false"),
        aws_access_key_id=secret("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=secret("AWS_SECRET_ACCESS_KEY"),
        dukascopy_url=dukascopy_url or settings.dukascopy_url,
        landing=str(settings.landing_root),
        shared_landing=settings.shared_landing,
    )
    return {
        "lake": lake,
        "io_manager": LakeIOManager(lake=lake),
        "dukascopy": DukascopyResource(
            url=dukascopy_url or settings.dukascopy_url, feed=dukascopy_feed or settings.dukascopy_feed,
            api_url=dukascopy_api or settings.dukascopy_api, api_batch_pause_seconds=settings.dukascopy_api_pause,
            lake=lake),
    }


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
    from lake_resources.datasets import DATASETS
    from lake_resources.resources import DATASET_KEY

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


# ------------------------------------------------------------------------------------------
# Summaries
# ------------------------------------------------------------------------------------------
@dataclass
class CheckSummary:
    check: str  # asset:check
    passed: int = 0
    warned: int = 0
    failed: int = 0
    not_run: int = 0
    example: str | None = None  # first failing partition and what the check said


def check_summaries(instance, asset_graph, partitions: set[str | None] | None = None) -> list[CheckSummary]:
    """Latest result of every asset check per partition (optionally only ``partitions``)."""
    import dagster as dg
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as S

    out = []
    for ck in sorted(asset_graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name)):
        summary = CheckSummary(f"{ck.asset_key.to_user_string()}:{ck.name}")
        latest = {}
        for record in instance.event_log_storage.get_asset_check_execution_history(ck, limit=100_000):
            latest.setdefault(record.partition, record)  # newest first
        for partition, record in sorted(latest.items(), key=lambda kv: kv[0] or ""):
            if partitions is not None and partition not in partitions:
                continue
            evaluation = record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event else None
            if record.status == S.SUCCEEDED:
                summary.passed += 1
            elif record.status == S.FAILED:
                warn = getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.WARN
                if warn:
                    summary.warned += 1
                else:
                    summary.failed += 1
                if summary.example is None:
                    what = getattr(evaluation, "description", None) or ""
                    summary.example = f"{partition or '-'}: {what}".strip().rstrip(":")
            else:
                summary.not_run += 1
        if summary.passed or summary.warned or summary.failed or summary.not_run:
            out.append(summary)
    return out


def format_check_summaries(summaries: list[CheckSummary], say: Say) -> None:
    """One line per asset (checks and results), then one line per check that warned or failed."""
    if not summaries:
        say("  (no asset check results)")
        return
    by_asset: dict[str, list[CheckSummary]] = {}
    for s in summaries:
        by_asset.setdefault(s.check.split(":", 1)[0], []).append(s)
    width = max(len(a) for a in by_asset)
    totals = CheckSummary("all")
    for asset, checks in by_asset.items():
        passed, warned, failed, not_run = (sum(getattr(c, f) for c in checks) for f in ("passed", "warned", "failed", "not_run"))
        totals.passed, totals.warned, totals.failed, totals.not_run = (
            totals.passed + passed, totals.warned + warned, totals.failed + failed, totals.not_run + not_run)
        parts = [f"{passed} passed"] + [f"{n} {label}" for n, label in ((warned, "warned"), (failed, "FAILED"), (not_run, "not run")) if n]
        say(f"  {asset:<{width}}  {len(checks)} checks: {', '.join(parts)}")
        for c in checks:
            if c.warned or c.failed:
                what = f"{c.failed} FAILED" if c.failed else f"{c.warned} warned"
                say(f"  {'':<{width}}    {c.check.split(':', 1)[1]}: {what}, e.g. {(c.example or '')[:150]}")
    say(f"  {'total':<{width}}  {totals.passed} passed, {totals.warned} warned, {totals.failed} failed"
        + (f", {totals.not_run} not run" if totals.not_run else ""))


def _print_frame(df, say: Say, rows: int = 12) -> None:
    import polars as pl

    with pl.Config(tbl_rows=rows, tbl_cols=12, fmt_str_lengths=40, tbl_width_chars=160,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        for line in str(df.head(rows)).splitlines():
            say("  " + line)


# ------------------------------------------------------------------------------------------
# lake demo
# ------------------------------------------------------------------------------------------
def _generate_once(settings, symbols: list[str], start: date, end: date, ticks_per_day: int, say: Say) -> None:
    import json

    from lake_resources.generate import generate

    landing = settings.landing_root
    marker = landing / ".lake-demo.json"
    wanted = {"symbols": symbols, "start": start.isoformat(), "end": end.isoformat(),
              "ticks_per_day": ticks_per_day, "seed": DEMO_SEED, "layouts": ["datafeed", "api"]}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        say(f"    already in {landing}: re-using it")
        return
    t = time.monotonic()
    summary = generate(landing, symbols, start, end, seed=DEMO_SEED, ticks_per_day=ticks_per_day)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(wanted))
    ticks = sum(summary.ticks.values())
    records = sum(summary.vendor_records.values())
    say(f"    {summary.files_written} files, {summary.bytes_written / 1e6:.1f} MB ({ticks:,} ticks in BI5 hours and "
        f"API responses, {records:,} vendor JSON records) in {time.monotonic() - t:.1f}s")


def run_demo(settings, *, days: int = 10, symbols: str = "EURUSD,XAUUSD,AAPL", ticks_per_day: int = 20_000,
             groups: Sequence[str] = DEMO_GROUPS, say: Say = _print) -> int:
    """Generate sample data and materialize the graph's ``groups`` through Dagster, idempotently.

    Returns 0 when every run succeeded. Partitions already materialized with the current code
    version and unchanged upstream (Dagster's stale status) and present in the lake are skipped.
    """
    t0 = time.monotonic()
    quiet_dagster()
    import dagster as dg
    from dagster._core.utils import make_new_run_id

    from lake_resources.client import LakeClient
    from lake_resources.storage import Lake

    prepare_dagster_home(settings)
    span = trading_days(DEMO_LAST_DAY, days)
    start, end = span[0], span[-1]
    # before anything loads the partitions: they are made from this lake's config
    settings = record_demo_config(settings, symbols, start, say)
    symbol_list = parse_symbols(symbols, settings)
    if start.isoformat() < settings.start_date:
        raise SystemExit(f"lake demo: the demo window starts {start}, before LAKE_START_DATE={settings.start_date} "
                         f"(environment); unset it or set it to {start} or earlier")
    window = calendar_days(start, end)
    say(f"lake demo: {len(span)} trading days {start} → {end} of {', '.join(symbol_list)}; lake {settings.home_abs}")

    say(f"1/4 sample vendor data (BI5 tick files, vendor JSON pulls) into {settings.landing_root}")
    _generate_once(settings, symbol_list, start, end, ticks_per_day, say)

    say("2/4 loading the asset graph")
    from lake_assets.definitions import defs

    # The default feed (the JSON data API) from the generated files of its layout: offline, no network.
    dukascopy_api = (settings.landing_root / "dukascopy-api").as_uri()
    resources = {**(defs.resources or {}), **lake_resources_for(
        settings, dukascopy_url=str(settings.landing_root / "dukascopy"), dukascopy_feed="api",
        dukascopy_api=dukascopy_api)}
    demo_defs = dg.Definitions(
        assets=list(defs.assets or []), asset_checks=list(defs.asset_checks or []), resources=resources,
    )
    job = demo_defs.resolve_implicit_global_asset_job_def()
    asset_graph = demo_defs.resolve_asset_graph()
    steps = demo_steps(asset_graph, groups)
    present = sorted({s.group for s in steps}, key=list(groups).index)
    missing = [g for g in groups if g not in present]
    say(f"    {sum(len(s.keys) for s in steps)} assets in {len(steps)} steps over groups {' → '.join(present)}"
        + (f" (no {', '.join(missing)} assets defined yet)" if missing else ""))

    say(f"3/4 materializing through Dagster (instance {settings.dagster_home})")
    lake = Lake(settings)
    failures = 0
    runs_started = 0
    window_keys: set[str | None] = {None}
    with dg.DagsterInstance.get() as instance:
        for step in steps:
            if failures:
                say(f"  [{step.group}] {', '.join(step.names)}: skipped (an upstream run failed)")
                continue
            lanes = step_partitions(step, window, symbol_list, instance)
            every = [k for keys in lanes.values() for k in keys] if step.partitions_def is not None else [None]
            window_keys.update(every)
            todo = set(every) - up_to_date(instance, asset_graph, step.keys, every, lake)
            runs = plan_runs(step, lanes, todo)
            head = f"  [{step.group}] {', '.join(step.names)}"
            if not runs:
                say(f"{head}: all {len(every)} partition(s) up to date")
                continue
            say(f"{head}: {len(todo)} of {len(every)} partition(s) to materialize in {len(runs)} run(s)")
            for planned in runs:
                t = time.monotonic()
                run_id = make_new_run_id()
                say(f"    run {run_id[:8]} {planned.label or 'unpartitioned'}")
                progress = RunProgress(instance, run_id, say)
                progress.start()
                try:
                    result = job.execute_in_process(
                        run_config=QUIET_RUN_CONFIG, instance=instance, asset_selection=planned.keys or step.keys,
                        partition_key=planned.partition_key, run_id=run_id, raise_on_error=False,
                        tags={**planned.tags, "lake/launched_by": "lake demo"},
                    )
                finally:
                    progress.stop()
                runs_started += 1
                ok = result.success
                say(f"    run {run_id[:8]} {'succeeded' if ok else 'FAILED'} in {time.monotonic() - t:.1f}s")
                if not ok:
                    failures += 1

        say("4/4 summary")
        client = LakeClient(settings)
        _print_datasets(client, symbol_list, start, end, say)
        if asset_graph.has(dg.AssetKey("leaderboard")):
            say("Leaderboard (best first):")
            try:
                board = client.read("leaderboard")
                shown = [c for c in LEADERBOARD_COLUMNS if c in board.columns]
                _print_frame(board.select(shown or board.columns), say, rows=10)
            except Exception as exc:  # not materialized (or failed): say so, the rest still stands
                say(f"  (no leaderboard: {settings.redact(str(exc)).splitlines()[0][:200]})")
        say("Asset checks (latest result per partition of the demo window):")
        format_check_summaries(check_summaries(instance, asset_graph, window_keys), say)

    _print_where(settings, say)
    say(f"done in {time.monotonic() - t0:.1f}s: {runs_started} run(s)"
        + (f", {failures} FAILED (see the UI)" if failures else ", nothing failed"))
    return 1 if failures else 0


def _print_datasets(client, symbols: list[str], start: date, end: date, say: Say) -> None:
    """Rows per symbol in the main daily datasets over the demo window."""
    import polars as pl

    frames = []
    for dataset in ("ticks", "bars_1m", "bars_1d"):
        try:
            in_list = ", ".join(f"'{s}'" for s in symbols)  # validated symbols: [A-Z0-9._-]
            df = client.sql(
                f"select symbol, count(*) as rows, min(ts) as first_ts, max(ts) as last_ts from {dataset} "
                f"where symbol in ({in_list}) and ts >= ?::timestamptz and ts < ?::timestamptz group by 1",
                [f"{start.isoformat()}T00:00:00Z", f"{(end + timedelta(days=1)).isoformat()}T00:00:00Z"],
            )
        except Exception:  # dataset not materialized at all
            continue
        frames.append(df.with_columns(pl.lit(dataset).alias("dataset")))
    if frames:
        say("Rows in the lake for the demo window:")
        table = pl.concat(frames, how="vertical_relaxed").select("dataset", "symbol", "rows", "first_ts", "last_ts")
        _print_frame(table.sort("dataset", "symbol"), say, rows=30)


def _print_where(settings, say: Say) -> None:
    env = "" if settings.home_abs == (REPO_ROOT / ".lake").resolve() else f"LAKE_HOME={settings.home_abs} "
    say("Where the data lives:")
    for label in ("hot tier", "warm tier", "cold tier", "raw zone", "landing", "DAGSTER_HOME"):
        say(f"  {label:<13} {settings.describe()[label]}")
    say(f"Query it:     {env}lake sql \"select symbol, count(*) from bars_1m group by 1\"")
    say(f"Open the UI:  {env}lake ui   then http://127.0.0.1:3000 (asset graph, partitions, checks, runs)")


# ------------------------------------------------------------------------------------------
# lake backfill
# ------------------------------------------------------------------------------------------
def _resolve_selection(selection: str, asset_graph) -> list:
    """Comma-separated asset keys or Dagster selection clauses (``group:canonical``, ``key:bars_*``)."""
    import dagster as dg

    from lake_resources.validation import LakeValidationError

    combined = None
    for item in (s.strip() for s in selection.split(",") if s.strip()):
        sel = dg.AssetSelection.from_string(item) if any(c in item for c in ":* +") else dg.AssetSelection.assets(item)
        combined = sel if combined is None else combined | sel
    if combined is None:
        raise LakeValidationError("empty --select")
    try:
        keys = combined.resolve(asset_graph)
    except Exception as exc:
        raise LakeValidationError(f"--select {selection!r}: {exc}") from None
    if not keys:
        raise LakeValidationError(f"--select {selection!r} matches no asset")
    return [k for k in asset_graph.toposorted_asset_keys if k in keys]


def _is_date_symbol(pdef) -> bool:
    import dagster as dg

    return isinstance(pdef, dg.MultiPartitionsDefinition) and {d.name for d in pdef.partitions_defs} == {"date", "symbol"}


def run_backfill(settings, *, start: str, end: str, symbols: str,
                 selection: str = "raw_dukascopy,ticks,bars_1m,bars_5m,bars_1h,bars_1d",
                 wait: bool = True, say: Say = _print, poll_seconds: float = 1.0, ui_port: int = 3000,
                 stall_timeout: float = DEFAULT_STALL_TIMEOUT_S, heartbeat_max_age: float = HEARTBEAT_MAX_AGE_S) -> int:
    """Launch a real Dagster asset backfill of ``selection`` over ``start..end`` x ``symbols`` and
    follow it; exit status 0 when every targeted partition materialized.

    The daemon of ``lake ui`` does the work only while its heartbeat is fresh; otherwise (or once it
    stops) this command runs the daemon's iterations itself. Pool slots held by runs that ended are
    freed. After ``stall_timeout`` seconds without progress it says what is stuck and returns 1."""
    quiet_dagster()
    import dagster as dg
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster._daemon.monitoring import execute_run_monitoring_iteration
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    from lake_resources.validation import LakeValidationError, parse_date

    prepare_dagster_home(settings)
    first, last = parse_date(start), parse_date(end)
    if last < first:
        raise LakeValidationError(f"--end {last} is before --start {first}")
    if stall_timeout <= 0:
        raise LakeValidationError(f"--stall-timeout must be > 0 seconds, got {stall_timeout:g}")
    symbol_list = parse_symbols(symbols, settings)
    days = calendar_days(first, last)
    logger = logging.getLogger("lake.backfill")
    logger.setLevel(logging.WARNING)

    with dg.DagsterInstance.get() as instance, WorkspaceProcessContext(
        instance, WorkspaceFileTarget([str(REPO_ROOT / "workspace.yaml")]), code_server_log_level="WARNING"
    ) as workspace:
        request = workspace.create_request_context()
        errors = list(request.code_location_errors())
        if errors:
            raise SystemExit(f"lake backfill: the code location failed to load:\n{errors[0].to_string()}")
        asset_graph = request.asset_graph
        keys = _resolve_selection(selection, asset_graph)
        not_daily = [k.to_user_string() for k in keys if not _is_date_symbol(asset_graph.get(k).partitions_def)]
        if not_daily:
            raise LakeValidationError(f"lake backfill covers the date x symbol graph; not partitioned that way: {', '.join(not_daily)}")
        pdef = asset_graph.get(keys[0]).partitions_def
        valid_days = set(pdef.get_partitions_def_for_dimension("date").get_partition_keys())
        outside = [d.isoformat() for d in days if d.isoformat() not in valid_days]
        if outside:
            raise LakeValidationError(outside_message(settings, outside))
        partition_keys = [f"{d.isoformat()}|{s}" for s in symbol_list for d in days]
        from lake_assets.partitions import symbol_has_asset

        # no Dukascopy partitions for vendor-only symbols (they would be empty); see DUKASCOPY_ONLY_ASSETS
        key_partitions = {k: [p for p in partition_keys if symbol_has_asset(k.to_user_string(), p.split("|")[1])]
                          for k in keys}
        subset = AssetGraphSubset(partitions_subsets_by_asset_key={
            k: asset_graph.get(k).partitions_def.subset_with_partition_keys(key_partitions[k])
            for k in keys if key_partitions[k]
        })
        if not any(key_partitions.values()):
            raise LakeValidationError(f"--symbols {','.join(symbol_list)}: vendor symbol(s) have no partitions of "
                                      f"{', '.join(k.to_user_string() for k in keys)} (Dukascopy data only); "
                                      "select bars_1m and what follows it")
        backfill_id = make_new_backfill_id()
        cursor = instance.event_log_storage.get_maximum_record_id()
        backfill = PartitionBackfill.from_asset_graph_subset(
            backfill_id=backfill_id, backfill_timestamp=time.time(),
            tags={"lake/launched_by": "lake backfill"}, dynamic_partitions_store=instance,
            asset_graph_subset=subset, title=f"lake backfill {first}..{last} {','.join(symbol_list)}",
            description=f"{', '.join(k.to_user_string() for k in keys)} over {first}..{last} x {', '.join(symbol_list)}",
            run_config=SILENT_RUN_CONFIG,
        )
        instance.add_backfill(backfill)
        say(f"backfill {backfill_id}: {len(keys)} asset(s) x {len(partition_keys)} partition(s) "
            f"({first} → {last} x {', '.join(symbol_list)})")
        say(f"  assets: {' → '.join(k.to_user_string() for k in keys)}")
        say(f"  in the UI: http://127.0.0.1:{ui_port}/runs/b/{backfill_id}?tab=partitions")
        external_daemon = daemon_running(instance, heartbeat_max_age)
        if not wait:
            if not external_daemon:
                say("  no daemon is running on this instance: start `lake ui` (or dagster-daemon) to process it")
            return 0
        say("  processed by the running daemon" if external_daemon
            else "  no daemon running: this command runs the backfill and run-queue iterations itself")
        queue_daemon = QueuedRunCoordinatorDaemon(interval_seconds=poll_seconds)
        t0 = time.monotonic()
        shown = ""
        last_shown = last_progress = t0
        progress_mark = None
        while True:
            if external_daemon and not daemon_running(instance, heartbeat_max_age):
                external_daemon = False
                say("  the daemon stopped heart-beating: this command takes over the backfill and run-queue iterations")
            for run_id, pid in fail_runs_with_dead_workers(instance):
                say(f"  run {run_id[:8]}: its worker process {pid} is gone; marked failed")
            for run_id, status, count in free_slots_of_ended_runs(instance):
                say(f"  freed {count} pool slot(s) held by run {run_id[:8]}, which ended {status}")
            if not external_daemon:
                for _ in execute_backfill_iteration(workspace, logger):
                    pass
                if instance.run_monitoring_enabled:
                    for _ in execute_run_monitoring_iteration(workspace, logger):
                        pass
                for _ in queue_daemon.run_iteration(workspace):
                    pass
            current = instance.get_backfill(backfill_id)
            runs = instance.get_runs(filters=dg.RunsFilter.for_backfill(backfill_id))
            by_status: dict[str, int] = {}
            for run in runs:
                by_status[run.status.value.lower()] = by_status.get(run.status.value.lower(), 0) + 1
            done = {k: len(instance.get_materialized_partitions(k, after_cursor=cursor) & set(key_partitions[k]))
                    for k in keys}
            line = (f"runs: {', '.join(f'{n} {s}' for s, n in sorted(by_status.items())) or 'none yet'} | "
                    + " ".join(f"{k.to_user_string()} {n}/{len(key_partitions[k])}" for k, n in done.items()))
            now = time.monotonic()
            if line != shown or now - last_shown > 15:
                say(f"  [{now - t0:6.1f}s] {line}")
                shown, last_shown = line, now
            if current.status in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED,
                                  BulkActionStatus.COMPLETED, BulkActionStatus.FAILED, BulkActionStatus.CANCELED):
                break
            mark = (current.status, tuple(sorted((r.run_id, r.status) for r in runs)), tuple(done.values()),
                    instance.event_log_storage.get_maximum_record_id())
            if mark != progress_mark:
                progress_mark, last_progress = mark, now
            elif now - last_progress > stall_timeout:
                say(f"lake backfill: no progress for {stall_timeout:g}s (--stall-timeout); what is stuck:")
                for fact in describe_stall(instance, current, runs, external_daemon):
                    say(f"  {fact}")
                say(f"  the backfill stays recorded: cancel it in the UI (http://127.0.0.1:{ui_port}/runs/b/{backfill_id}) "
                    "or run `lake backfill` again once the cause is fixed")
                return 1
            time.sleep(poll_seconds)
        complete = all(n == len(key_partitions[k]) for k, n in done.items())
        ok = current.status in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED) and complete
        say(f"backfill {backfill_id}: {current.status.value} in {time.monotonic() - t0:.1f}s, "
            f"{len(runs)} run(s)" + ("" if ok else " — see the UI for the failed runs"))
        if current.error is not None:
            say(f"  error: {settings.redact(current.error.message.strip())[:400]}")
        for run in runs:
            if run.status == dg.DagsterRunStatus.FAILURE:
                say(f"  run {run.run_id[:8]} failed: {failure_line(instance, run.run_id, settings)}")
        for _ in free_slots_of_ended_runs(instance):  # nothing left held by this backfill's runs
            pass
        return 0 if ok else 1


# ------------------------------------------------------------------------------------------
# lake ui
# ------------------------------------------------------------------------------------------
def ui_command(host: str, port: int) -> list[str]:
    return [os.path.join(os.path.dirname(sys.executable), "dagster"), "dev", "-h", host, "-p", str(port),
            "-w", str(REPO_ROOT / "workspace.yaml")]


def run_ui(settings, *, host: str = "127.0.0.1", port: int = 3000, say: Say = _print) -> int:
    """Start ``dagster dev`` (webserver + daemon) on the lake's DAGSTER_HOME; stop cleanly on Ctrl-C/SIGTERM.

    ``dagster dev`` runs in its own session so a terminal's Ctrl-C reaches it once, from us: it then
    stops the webserver, the daemon and the code server itself.
    """

    def restore_sigint() -> None:
        # started from a non-interactive shell, SIGINT would be inherited as ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    prepare_dagster_home(settings)
    proc = subprocess.Popen(ui_command(host, port), cwd=REPO_ROOT, preexec_fn=restore_sigint, start_new_session=True)
    stopping = threading.Event()

    def forward(signum, _frame) -> None:
        if not stopping.is_set():
            stopping.set()
            say(f"lake ui: stopping (signal {signal.Signals(signum).name})")
            proc.send_signal(signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    say(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={settings.dagster_home}, lake {settings.home_abs}); Ctrl-C stops it")
    try:
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
        return 0 if stopping.is_set() and code in (0, -signal.SIGINT, 130) else code
    finally:
        if proc.poll() is None:
            _stop_group(proc)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop_group(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the process group of ``proc`` until it is gone."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue

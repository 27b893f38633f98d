"""``lake demo``: sample data generated once, then every demo group materialized through Dagster."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta

from lake_assets.cli.common import (
    DEMO_GROUPS,
    DEMO_LAST_DAY,
    DEMO_SEED,
    LEADERBOARD_COLUMNS,
    QUIET_RUN_CONFIG,
    REPO_ROOT,
    Say,
    _print,
    calendar_days,
    lake_resources_for,
    parse_symbols,
    prepare_dagster_home,
    quiet_dagster,
    trading_days,
)
from lake_assets.cli.planning import RunProgress, demo_steps, plan_runs, step_partitions, up_to_date
from lake_assets.cli.summaries import _print_frame, check_summaries, format_check_summaries
from lake_resources.lakeconfig import DEFAULT, ENVIRONMENT, write_lake_config
from lake_resources.settings import ENV_VARS


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


def record_demo_config(settings, symbols: str, start: date, say: Callable[[str], None] = print):
    """Make the lake remember what the demo put in it (``LAKE_HOME/lake.toml``): its feed (the sample
    files in the landing area, API and BI5 layouts), its first day and its symbols, so later commands (``lake
    backfill``, ``lake ui``, ``dagster``) use them and the partitions fit the data. Values set in the
    environment are not written (they win anyway); a window or symbol list already recorded grows."""
    from lake_resources.catalog.validation import validate_symbol

    requested = list(dict.fromkeys(validate_symbol(s) for s in symbols.split(",") if s.strip()))
    if settings.source("LAKE_SYMBOLS") == ENVIRONMENT:
        settings.require_symbols(requested)
    updates: dict[str, str] = {}
    recorded = settings.source("LAKE_SYMBOLS") not in (ENVIRONMENT, DEFAULT)
    if settings.source("LAKE_SYMBOLS") != ENVIRONMENT:
        have = list(settings.symbols) if recorded else []
        updates["LAKE_SYMBOLS"] = ",".join(dict.fromkeys([*have, *requested]))
    if settings.source("LAKE_START_DATE") != ENVIRONMENT:
        first = start.isoformat()
        recorded_start = settings.start_date if settings.source("LAKE_START_DATE") != DEFAULT else first
        updates["LAKE_START_DATE"] = min(first, recorded_start)
    # the demo's sample feed in both layouts: the JSON data API (the default feed) and BI5
    if settings.source("LAKE_DUKASCOPY_API") == DEFAULT:
        updates["LAKE_DUKASCOPY_API"] = str(settings.landing_root / "dukascopy-api")
    if settings.source("LAKE_DUKASCOPY_URL") == DEFAULT:
        updates["LAKE_DUKASCOPY_URL"] = str(settings.landing_root / "dukascopy")
    current = {"LAKE_SYMBOLS": ",".join(settings.symbols), "LAKE_START_DATE": settings.start_date,
               "LAKE_DUKASCOPY_URL": settings.dukascopy_url, "LAKE_DUKASCOPY_API": settings.dukascopy_api}
    changed = {k: v for k, v in updates.items() if settings.source(k) == DEFAULT or v != current[k]}
    if not changed:
        return settings
    path = write_lake_config(settings.home, ENV_VARS, changed)
    say(f"lake config {path}: " + ", ".join(f"{k}={v}" for k, v in sorted(changed.items())))
    return type(settings).from_env({**os.environ, "LAKE_HOME": str(settings.home_abs)})

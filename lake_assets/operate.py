"""Operating the lake: the main job (``lake demo``), backfills and the UI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

from lake_assets.cli import prepare_dagster_home

DAILY_GRAPH = ["raw_dukascopy", "ticks", "bars_1m", "bars_5m", "bars_1h", "bars_1d"]


def _print(msg: str) -> None:
    print(msg, flush=True)


def trading_days(end: date, count: int) -> list[date]:
    """The last ``count`` weekdays up to ``end``."""
    days: list[date] = []
    d = end
    while len(days) < count:
        if d.weekday() < 5:
            days.append(d)
        d -= timedelta(days=1)
    return sorted(days)


def run_demo(settings, *, days: int, symbols: str, ticks_per_day: int) -> int:
    """Generate sample vendor data and materialize the daily graph through Dagster, idempotently."""
    import dagster as dg

    from lake_resources.generate import generate

    prepare_dagster_home(settings)
    landing = settings.landing_root
    os.environ["LAKE_DUKASCOPY_URL"] = str(landing / "dukascopy")
    symbol_list = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    span = trading_days(date(2019, 2, 15), days)  # a fixed window: the demo is reproducible
    start, end = span[0], span[-1]
    t0 = time.monotonic()
    _print(f"1/3 sample vendor data for {', '.join(symbol_list)} {start} → {end} into {landing}")
    marker = landing / f".generated-{start}-{end}-{'-'.join(symbol_list)}-{ticks_per_day}"
    if marker.exists():
        _print("    already generated: re-using it")
    else:
        generate(landing, symbol_list, start, end, seed=7, ticks_per_day=ticks_per_day)
        marker.touch()

    from lake_assets.definitions import defs  # after LAKE_DUKASCOPY_URL is set

    instance = dg.DagsterInstance.get()
    from lake_resources.client import LakeClient

    client = LakeClient(settings)
    done = {(dict(l.partition)["symbol"], dict(l.partition)["date"]) for l in client.partitions("bars_1d")}
    _print(f"2/3 materializing {' → '.join(DAILY_GRAPH)} through Dagster (instance {settings.dagster_home})")
    for sym in symbol_list:
        todo = [d for d in span if (sym, d.isoformat()) not in done]
        if not todo:
            _print(f"    {sym}: all {len(span)} days already in the lake")
            continue
        t1 = time.monotonic()
        result = dg.materialize(
            list(defs.assets),
            selection=DAILY_GRAPH,
            instance=instance,
            resources=defs.resources,
            tags={
                "dagster/asset_partition_range_start": f"{todo[0]}|{sym}",
                "dagster/asset_partition_range_end": f"{todo[-1]}|{sym}",
                "lake/launched_by": "lake demo",
            },
            raise_on_error=False,
        )
        status = "ok" if result.success else "FAILED"
        _print(f"    {sym}: {todo[0]} → {todo[-1]} {status} in {time.monotonic() - t1:.1f}s (run {result.run_id[:8]})")
        if not result.success:
            return 1
    _print("3/3 summary")
    counts = client.sql(
        "select symbol, count(*) as minute_bars, min(ts) as first_bar, max(ts) as last_bar from bars_1m group by 1 order by 1"
    )
    _print(str(counts))
    _print(f"\nData lives in {settings.home_abs} (hot Parquet: {settings.hot_root}, warm DuckDB: {settings.warm_path}, "
           f"cold: {settings.cold_root})")
    _print("Query it:  .venv/bin/lake sql \"select * from bars_1d order by symbol, ts\"")
    _print("Open the UI:  .venv/bin/lake ui   (then http://127.0.0.1:3000)")
    _print(f"done in {time.monotonic() - t0:.1f}s")
    return 0


def run_ui(settings, *, host: str, port: int) -> int:
    """Start ``dagster dev`` (webserver + daemon) on the lake's DAGSTER_HOME; stop cleanly on Ctrl-C/SIGTERM."""
    from lake_assets.cli import REPO_ROOT

    prepare_dagster_home(settings)
    cmd = [os.path.join(os.path.dirname(sys.executable), "dagster"), "dev", "-h", host, "-p", str(port),
           "-w", str(REPO_ROOT / "workspace.yaml")]
    # dagster dev started from a non-interactive shell inherits SIGINT as ignored: restore defaults.
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def forward(signum, _frame):
        proc.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    _print(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={settings.dagster_home}); Ctrl-C stops it")
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def run_backfill(settings, **kwargs) -> int:
    raise SystemExit("lake backfill: not available yet")

"""The ``lake`` command: query the lake, inspect storage, generate sample data, run Dagster."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _settings():
    from lake_resources.settings import LakeSettings

    return LakeSettings.from_env()


# ------------------------------------------------------------------------------------------
def cmd_sql(args) -> int:
    from lake_resources.client import LakeClient

    df = _sql_frame(LakeClient(_settings()), args)
    fmt = args.format
    if fmt == "parquet":
        if not args.out:
            print("error: --format parquet needs --out FILE", file=sys.stderr)
            return 2
        df.write_parquet(args.out)
        print(f"wrote {df.height} rows to {args.out}", file=sys.stderr)
        return 0
    out = open(args.out, "w") if args.out else sys.stdout
    try:
        if fmt == "csv":
            out.write(df.write_csv())
        elif fmt == "json":
            out.write(df.write_json() + "\n")
        else:
            from lake_assets.cli.sql_format import render

            out.write(render(df, args.max_rows, args.layout, width=None if not args.out else 200))
    finally:
        if args.out:
            out.close()
    return 0


def _sql_frame(client, args):
    """``lake sql``'s result; partitions skipped by ``--skip-damaged`` are named, one line each, and so
    is an unreachable S3 cold tier the query did without."""
    import warnings

    from lake_resources.storage import ColdTierUnreachableWarning
    from lake_resources.storage.layout import DamagedPartitionWarning

    shown = (DamagedPartitionWarning, ColdTierUnreachableWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DamagedPartitionWarning)
        warnings.simplefilter("always", ColdTierUnreachableWarning)
        df = client.sql(args.query, skip_damaged=args.skip_damaged)
    said: set[str] = set()
    for w in caught:
        if issubclass(w.category, shown) and str(w.message) not in said:
            said.add(str(w.message))
            print(f"lake sql: warning: {w.message}", file=sys.stderr)
    return df


def cmd_storage(args) -> int:
    from lake_resources.lifecycle import cli_storage

    return cli_storage(_settings(), args)


def cmd_migrate(args) -> int:
    from lake_resources.lifecycle import cli_migrate

    return cli_migrate(_settings(), args)


def cmd_bench(args) -> int:
    from lake_assets.bench_dagster import dagster_backfill
    from lake_resources.bench import cli_bench

    return cli_bench(args, dagster_backfill=dagster_backfill)


def cmd_replay(args) -> int:
    from lake_resources.research.replay import cli_replay

    return cli_replay(_settings(), args)


def cmd_config(args) -> int:
    from lake_resources.lakeconfig import config_path
    from lake_resources.settings import ENV_VARS

    if args.set or args.unset:
        return _set_lake_config(args.set or [], args.unset or [])
    settings = _settings()
    for key, value in settings.describe().items():
        where = f"  ({settings.source(key)})" if key in ENV_VARS else ""
        print(f"{key:24} {value}{where}")
    print(f"{'lake config':24} {config_path(settings.home)}"
          + ("" if config_path(settings.home).exists() else " (none yet)"))
    if args.verbose:
        print("\nEnvironment variables:")
        for key, text in ENV_VARS.items():
            print(f"  {key:24} {text}")
    return 0


def _set_lake_config(assignments: list[str], unset: list[str]) -> int:
    """``lake config --set NAME=VALUE`` / ``--unset NAME``: change this lake's lake.toml (validated first)."""
    from lake_resources.catalog.validation import LakeValidationError
    from lake_resources.lakeconfig import write_lake_config
    from lake_resources.settings import ENV_VARS, LakeSettings

    updates: dict[str, str | None] = {name.strip(): None for name in unset}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep:
            raise LakeValidationError(f"--set {item!r}: expected NAME=VALUE")
        updates[name.strip()] = value.strip()
    settings = _settings()
    # validate the values as the lake would read them before anything is written
    LakeSettings.from_env({**os.environ, **{k: v for k, v in updates.items() if v}})
    path = write_lake_config(settings.home, ENV_VARS, updates)
    for name, value in updates.items():
        print(f"{name} {'= ' + value if value else 'removed'} in {path}"
              + (f" (the environment's {name} still overrides it)" if os.environ.get(name) else ""))
    return 0


def cmd_env(args) -> int:
    """``eval "$(lake env)"``: this lake's LAKE_HOME and DAGSTER_HOME (made ready) for plain ``dagster``."""
    import shlex

    settings = _settings()
    from lake_assets.cli.common import prepare_dagster_home

    home = prepare_dagster_home(settings)
    print(f"export LAKE_HOME={shlex.quote(str(settings.home_abs))} DAGSTER_HOME={shlex.quote(str(home))}")
    return 0


def cmd_generate(args) -> int:
    from lake_resources.catalog.instruments import instrument
    from lake_resources.catalog.validation import LakeValidationError, parse_date
    from lake_resources.generate import generate

    settings = _settings()
    out = Path(args.out) if args.out else settings.landing_root
    start, end = parse_date(args.start), parse_date(args.end)
    if end < start:
        raise LakeValidationError(f"--end {end} is before --start {start}")
    if args.ticks_per_day is not None and args.ticks_per_day < 0:
        raise LakeValidationError(f"--ticks-per-day must be 0 or more, got {args.ticks_per_day}")
    for symbol in (s.strip() for s in args.symbols.split(",") if s.strip()):
        try:
            instrument(symbol)
        except KeyError as exc:  # UnknownSymbolError
            raise LakeValidationError(f"--symbols: {exc}") from None
    summary = generate(out, [s.strip() for s in args.symbols.split(",") if s.strip()], args.start, args.end,
                       seed=args.seed, **({"ticks_per_day": args.ticks_per_day} if args.ticks_per_day is not None else {}))
    print(json.dumps(summary.as_dict(), indent=1) if args.json else str(summary))
    return 0


def cmd_instruments(args) -> int:
    """``lake instruments sync``: refresh the API instrument catalogue from the API (LAKE_DUKASCOPY_API)."""
    from lake_resources.catalog.api_instruments import catalogue_path, lake_copy_path, shipped_path
    from lake_resources.sources.dukascopy.api import DukascopyApiSource
    from lake_resources.sources.dukascopy.datafeed import SourceError
    from lake_resources.sources.dukascopy.instrument_sync import SyncError, sync

    settings = _settings()
    base = args.base or settings.dukascopy_api
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else list(settings.symbols)
    from lake_resources.catalog.instruments import catalogue

    symbols = [s for s in symbols if catalogue().get(s.upper()) is None or catalogue()[s.upper()].source == "dukascopy"]
    out = Path(args.out) if args.out else (catalogue_path() if catalogue_path() != shipped_path() else lake_copy_path())
    if not out.exists():  # start from the shipped catalogue: the list refreshes it, details add to it
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(shipped_path().read_bytes())
    try:
        with DukascopyApiSource(base, batch_pause=settings.dukascopy_api_pause) as source:
            counts = sync(source, out, detail_symbols=symbols)
    except (SyncError, SourceError, ValueError) as exc:  # one line naming what and where
        print(f"lake instruments sync: {exc}", file=sys.stderr)
        return 1
    print(f"{out}: {counts['listed']} instruments listed ({counts['added']} new), details of {counts['details']} "
          f"({', '.join(symbols)}) from {base}")
    return 0


def cmd_serve(args) -> int:
    from lake_resources.serve import run

    return run(_settings(), host=args.host, port=args.port, token_file=args.token_file)


def cmd_ui(args) -> int:
    from lake_assets.cli.ui import run_ui

    return run_ui(_settings(), host=args.host, port=args.port)


def cmd_demo(args) -> int:
    from lake_assets.cli.demo import run_demo

    return run_demo(_settings(), days=args.days, symbols=args.symbols, ticks_per_day=args.ticks_per_day)


def cmd_backfill(args) -> int:
    from lake_assets.cli.backfill import run_backfill

    return run_backfill(_settings(), start=args.start, end=args.end, symbols=args.symbols,
                        selection=args.select, wait=not args.no_wait, stall_timeout=args.stall_timeout)


# ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from lake_assets.cli.watch import DEFAULT_STALL_TIMEOUT_S

    parser = argparse.ArgumentParser(prog="lake", description="quant-lake: a market-data lake on Dagster")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sql", help="run SQL over every dataset (one view per dataset, all tiers)")
    p.add_argument("query")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--out", help="write to FILE instead of stdout (required for parquet)")
    p.add_argument("--max-rows", type=int, default=50, help="rows shown by --format table")
    p.add_argument("--skip-damaged", action="store_true",
                   help="read around damaged partitions (each named in a warning) instead of failing")
    p.add_argument("--layout", choices=["auto", "table", "vertical"], default="auto",
                   help="--format table: a table, one record per block, or auto (a table when it fits the terminal)")
    p.add_argument("-x", "--vertical", dest="layout", action="store_const", const="vertical",
                   help="same as --layout vertical (like psql's \\x)")
    p.set_defaults(fn=cmd_sql)

    p = sub.add_parser("storage", help="partitions, rows and bytes per dataset and tier")
    p.add_argument("--json", action="store_true")
    p.add_argument("--verify", action="store_true",
                   help="check every partition copy against its manifest (SHA-256, rows); exit 1 naming damaged ones")
    p.add_argument("--dataset", help="with --verify: one dataset")
    p.add_argument("--symbols", help="with --verify: comma-separated symbols")
    p.add_argument("--start", metavar="DATE", help="with --verify: first partition date")
    p.add_argument("--end", metavar="DATE", help="with --verify: last partition date")
    p.set_defaults(fn=cmd_storage)

    p = sub.add_parser("migrate", help="move partitions between tiers by policy (copy, verify, then delete)")
    p.add_argument("--dataset")
    p.add_argument("--older-than", type=int, metavar="DAYS")
    p.add_argument("--to", choices=["hot", "warm", "cold"])
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--as-of", metavar="DATE", help="'now' for age-based policies (default LAKE_AS_OF, else today UTC)")
    p.add_argument("--start", metavar="DATE", help="first partition date to consider")
    p.add_argument("--end", metavar="DATE", help="last partition date to consider")
    p.add_argument("--compact", action="store_true", help="also compact closed months in the cold tier afterwards")
    p.add_argument("-v", "--verbose", action="store_true", help="list every partition, not only the summary")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_migrate)

    p = sub.add_parser("bench", help="benchmark harness: every figure as a ratio against its baseline")
    p.add_argument("--quick", action="store_true", help="small data, under a minute")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--only", help="comma-separated figure ids to run")
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("replay", help="stream rows in time order across symbols (JSON lines)")
    p.add_argument("--dataset", default="bars_1m")
    p.add_argument("--symbols", required=True)
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--speed", help="e.g. 60x: sixty times real time")
    speed.add_argument("--as-fast-as-possible", action="store_true")
    p.add_argument("--out", help="write JSON lines to FILE instead of stdout")
    p.set_defaults(fn=cmd_replay)

    p = sub.add_parser("config", help="show the settings in force and where each comes from (secrets hidden)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="store a setting in this lake's LAKE_HOME/lake.toml (e.g. LAKE_SYMBOLS=EURUSD,GBPJPY)")
    p.add_argument("--unset", action="append", metavar="NAME", help="remove a setting from lake.toml")
    p.set_defaults(fn=cmd_config)

    p = sub.add_parser("env", help="print `export LAKE_HOME=… DAGSTER_HOME=…` for plain dagster commands: "
                       'eval "$(lake env)"')
    p.set_defaults(fn=cmd_env)

    p = sub.add_parser("generate", help="write realistic sample vendor data (BI5 + JSON pulls)")
    p.add_argument("--symbols", default="EURUSD,XAUUSD,AAPL")
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    p.add_argument("--out", help="directory (default: the landing area)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ticks-per-day", type=int)
    p.add_argument("--json", action="store_true", help="print the summary as JSON (files, ticks per symbol-day, ...)")
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser("instruments", help="the Dukascopy API instrument catalogue")
    isub = p.add_subparsers(dest="action", required=True)
    q = isub.add_parser("sync", help="refresh codes, factors, schedules, holidays from {LAKE_DUKASCOPY_API}/instruments")
    q.add_argument("--base", help="API base (default LAKE_DUKASCOPY_API)")
    q.add_argument("--symbols", help="symbols whose detail (schedule, holidays) to fetch (default LAKE_SYMBOLS)")
    q.add_argument("--out", help="catalogue file to write (default: LAKE_INSTRUMENTS_API, else LAKE_HOME/instruments_api.json)")
    q.set_defaults(fn=cmd_instruments)


    p = sub.add_parser("serve", help="serve every dataset over HTTP (REST + Arrow); LakeClient(url=...) reads it")
    p.add_argument("--host", default="127.0.0.1", help="bind address (non-loopback needs tokens)")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--token-file", help="name:scope:token per line (default LAKE_SERVE_TOKEN_FILE); "
                                        "LAKE_SERVE_TOKENS adds comma-separated entries")
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("ui", help="start the Dagster webserver and daemon on this lake")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(fn=cmd_ui)

    p = sub.add_parser("demo", help="generate sample data and materialize the whole graph")
    p.add_argument("--days", type=int, default=10, help="trading days of sample data")
    p.add_argument("--symbols", default="EURUSD,XAUUSD,AAPL")
    p.add_argument("--ticks-per-day", type=int, default=20_000)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("backfill", help="launch a Dagster backfill of the daily graph and follow it")
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    p.add_argument("--symbols", required=True)
    p.add_argument("--select", default="raw_dukascopy,ticks,bars_1m,bars_5m,bars_1h,bars_1d")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--stall-timeout", type=float, default=DEFAULT_STALL_TIMEOUT_S, metavar="SECONDS",
                   help="give up (exit 1, saying what is stuck) after this long without progress "
                   f"(default {DEFAULT_STALL_TIMEOUT_S:g})")
    p.set_defaults(fn=cmd_backfill)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lake_assets.cli.errors import explain, redact

    try:
        return args.fn(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line naming what and where (see lake_assets/cli/errors.py); no traceback
        if os.environ.get("LAKE_DEBUG"):
            raise
        status, message = explain(exc)
        print(f"lake {args.command}: {redact(message, os.environ)}", file=sys.stderr)
        return status



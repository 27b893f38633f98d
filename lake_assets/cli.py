"""The ``lake`` command: query the lake, inspect storage, generate sample data, run Dagster."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _settings():
    from lake_resources.settings import LakeSettings

    return LakeSettings.from_env()


def prepare_dagster_home(settings) -> Path:
    """DAGSTER_HOME (default LAKE_HOME/dagster) with the project's dagster.yaml in it."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    src = REPO_ROOT / "dagster.yaml"
    dst = home / "dagster.yaml"
    if src.exists() and (not dst.exists() or dst.read_bytes() != src.read_bytes()):
        shutil.copyfile(src, dst)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("LAKE_HOME", str(settings.home_abs))
    return home


# ------------------------------------------------------------------------------------------
def cmd_sql(args) -> int:
    import polars as pl

    from lake_resources.client import LakeClient

    df = LakeClient(_settings()).sql(args.query)
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
            with pl.Config(tbl_rows=args.max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
                out.write(str(df) + "\n")
    finally:
        if args.out:
            out.close()
    return 0


def cmd_storage(args) -> int:
    from lake_resources.lifecycle import cli_storage

    return cli_storage(_settings(), args)


def cmd_migrate(args) -> int:
    from lake_resources.lifecycle import cli_migrate

    return cli_migrate(_settings(), args)


def cmd_bench(args) -> int:
    from lake_resources.bench import cli_bench

    return cli_bench(args)


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
    from lake_resources.lakeconfig import write_lake_config
    from lake_resources.settings import ENV_VARS, LakeSettings
    from lake_resources.validation import LakeValidationError

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
    home = prepare_dagster_home(settings)
    print(f"export LAKE_HOME={shlex.quote(str(settings.home_abs))} DAGSTER_HOME={shlex.quote(str(home))}")
    return 0


def cmd_generate(args) -> int:
    from lake_resources.generate import generate

    settings = _settings()
    out = Path(args.out) if args.out else settings.landing_root
    summary = generate(out, [s.strip() for s in args.symbols.split(",") if s.strip()], args.start, args.end,
                       seed=args.seed, **({"ticks_per_day": args.ticks_per_day} if args.ticks_per_day else {}))
    print(json.dumps(summary, indent=1, default=str) if not isinstance(summary, str) else summary)
    return 0


def cmd_ui(args) -> int:
    from lake_assets.operate import run_ui

    return run_ui(_settings(), host=args.host, port=args.port)


def cmd_demo(args) -> int:
    from lake_assets.operate import run_demo

    return run_demo(_settings(), days=args.days, symbols=args.symbols, ticks_per_day=args.ticks_per_day)


def cmd_backfill(args) -> int:
    from lake_assets.operate import run_backfill

    return run_backfill(_settings(), start=args.start, end=args.end, symbols=args.symbols,
                        selection=args.select, wait=not args.no_wait, stall_timeout=args.stall_timeout)


# ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from lake_assets.watch import DEFAULT_STALL_TIMEOUT_S

    parser = argparse.ArgumentParser(prog="lake", description="quant-lake: a market-data lake on Dagster")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sql", help="run SQL over every dataset (one view per dataset, all tiers)")
    p.add_argument("query")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--out", help="write to FILE instead of stdout (required for parquet)")
    p.add_argument("--max-rows", type=int, default=50, help="rows shown by --format table")
    p.set_defaults(fn=cmd_sql)

    p = sub.add_parser("storage", help="partitions, rows and bytes per dataset and tier")
    p.add_argument("--json", action="store_true")
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
    p.set_defaults(fn=cmd_generate)

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
    import duckdb

    from lake_resources.storage import LakeStorageError
    from lake_resources.validation import LakeValidationError

    try:
        return args.fn(args) or 0
    except (LakeValidationError, FileNotFoundError) as exc:
        print(f"lake {args.command}: {_settings().redact(str(exc))}", file=sys.stderr)
        return 2
    except (duckdb.Error, LakeStorageError) as exc:
        print(f"lake {args.command}: {_settings().redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

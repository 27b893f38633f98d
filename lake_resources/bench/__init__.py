"""``lake bench``: every performance figure as a ratio against its baseline, measured in one run.

The harness generates its own data (:mod:`lake_resources.generate`), measures each figure against
its baseline side by side on the same data (interleaved rounds, medians), checks that both sides
compute the same thing, and prints one markdown table headed by the machine it ran on. A figure
that misses its target is shown as **MISSED**. The full run also reports how ours scales from one
day to all days (cost per tick should stay flat); ``--quick`` runs small data in under a minute.

Modules: :mod:`.core` (sizes, timing, rendering), :mod:`.workspace` (the data), one module per
figure group (:mod:`.codec`, :mod:`.bars`, :mod:`.backtest`, :mod:`.reads`, :mod:`.serve`,
:mod:`.backfill`),
:mod:`.pipeline` (the ingest graph as plain calls), :mod:`.peakmem` (the peak-memory subprocess).
The Dagster side of the backfill figure is handed in (``dagster_backfill``): the library never imports
the Dagster layer (``lake_assets.bench_dagster`` holds it).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lake_resources.bench.core import BenchConfig, Figure, header_lines, log, machine_info, render_scaling, render_table

if TYPE_CHECKING:
    from lake_resources.bench.pipeline import BackfillRunner

__all__ = ["BenchConfig", "Figure", "FIGURE_IDS", "cli_bench", "run_bench", "render_report"]

_GROUPS = ("codec", "bars", "backtest", "reads", "serve", "backfill")


def _group_module(name: str):
    import importlib

    return importlib.import_module(f"lake_resources.bench.{name}")


def _group_ids() -> dict[str, tuple[str, ...]]:
    return {name: _group_module(name).IDS for name in _GROUPS}


#: Every figure id, in table order.
FIGURE_IDS: tuple[str, ...] = (
    "decode_1core", "decode_2cores", "decode_vs_struct", "decode_api_1core", "parquet_size",
    "bars_vs_pandas", "bars_vs_numpy", "bars_parquet_vs_duckdb",
    "backtest_vs_loop",
    "client_day", "client_hour_in_month", "sql_month",
    "serve_day", "serve_hour", "serve_clients_8", "serve_load_16",
    "dagster_backfill", "peak_memory",
)


def parse_only(only: str | None) -> set[str]:
    if not only:
        return set(FIGURE_IDS)
    wanted = {part.strip() for part in only.split(",") if part.strip()}
    unknown = sorted(wanted - set(FIGURE_IDS))
    if unknown:
        raise ValueError(f"unknown figure id(s) {', '.join(unknown)}; known: {', '.join(FIGURE_IDS)}")
    return wanted


def run_bench(config: BenchConfig, only: set[str] | None = None, root: Path | None = None,
              dagster_backfill: BackfillRunner | None = None) -> list[Figure]:
    """Measure the figures in ``only`` (default: all) and return them in table order. ``dagster_backfill``
    (``lake_assets.bench_dagster.dagster_backfill``) is needed for the figure of that name."""
    from lake_resources.bench.workspace import Workspace

    wanted = set(FIGURE_IDS) if only is None else set(only)
    if "dagster_backfill" in wanted and dagster_backfill is None:
        raise ValueError("the dagster_backfill figure needs the Dagster layer's backfill runner: run it through "
                         "`lake bench` (or pass lake_assets.bench_dagster.dagster_backfill)")
    workspace = Workspace(config, root)
    figures: list[Figure] = []
    try:
        for name, ids in _group_ids().items():
            chosen = wanted & set(ids)
            if chosen:
                extra = {"dagster_backfill": dagster_backfill} if name == "backfill" else {}
                figures.extend(_group_module(name).run(workspace, chosen, **extra))
    finally:
        workspace.close()
    order = {fid: i for i, fid in enumerate(FIGURE_IDS)}
    return sorted(figures, key=lambda f: order[f.id])


def render_report(config: BenchConfig, figures: list[Figure], machine: dict, elapsed: float | None = None) -> str:
    parts = ["\n".join(header_lines(config, machine, elapsed)), "", render_table(figures)]
    scaling = render_scaling(figures, config)
    if scaling:
        parts += ["", f"Scaling of ours from 1 day to {config.days} trading days (flat cost per tick is the goal):", "",
                  scaling]
    missed = [f for f in figures if not f.met]
    parts += ["", f"{len(figures) - len(missed)} of {len(figures)} figures meet their target"
              + (f"; missed: {', '.join(f.id for f in missed)}." if missed else ".")]
    return "\n".join(parts)


def cli_bench(args, out: TextIO | None = None, config: BenchConfig | None = None,
              dagster_backfill: BackfillRunner | None = None) -> int:
    """``lake bench [--quick] [--json FILE] [--only IDS]``; returns the exit status (0 once it ran).

    Missed targets are results, not errors: they are shown (and ``met`` is false in the JSON), and
    the status stays 0. A baseline that disagrees with ours raises. ``config`` overrides the sizes
    (tests run tiny ones); ``dagster_backfill`` as in ``run_bench``.
    """
    out = out or sys.stdout
    try:
        only = parse_only(getattr(args, "only", None))
    except ValueError as exc:
        print(f"lake bench: {exc}", file=sys.stderr)
        return 2
    if config is None:
        config = BenchConfig.quick() if getattr(args, "quick", False) else BenchConfig.full()
    machine = machine_info()
    log(f"{config.mode} run: {len(only)} figure(s) on {machine['nproc']} cores ({machine['cpu']})")
    start = time.perf_counter()
    figures = run_bench(config, only, dagster_backfill=dagster_backfill)
    elapsed = time.perf_counter() - start
    out.write(render_report(config, figures, machine, elapsed) + "\n")
    out.flush()
    json_path = getattr(args, "json", None)
    if json_path:
        rows = [f.as_json() for f in figures]
        Path(json_path).write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        log(f"wrote {len(figures)} figure(s) to {json_path}")
    return 0

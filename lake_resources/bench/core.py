"""Shared parts of the benchmark harness: sizes, timing, figures, the machine, rendering.

Every figure is the ratio of two measurements taken in the same process, on the same data, in the
same run: the machines are shared and noisy, so absolute throughputs from different runs do not
compare, but a ratio of two things measured side by side does. Each pair is timed ``repeats``
times, interleaved (the order rotates every round so drift hits both sides alike), and the ratio
is taken between the two medians.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib import metadata

#: Packages whose versions the table header names.
PACKAGES = ("polars", "numpy", "pyarrow", "duckdb", "pandas", "dagster")


@dataclass(frozen=True)
class BenchConfig:
    """How much data and how many repeats. ``quick()``/``full()`` are the two sizes ``lake bench`` runs."""

    symbol: str = "EURUSD"  # the real fixture's symbol; its synthetic files compress and decode like the real ones
    #: The decode figures' symbol: the baselines in shared/NOTES.md were measured on synthetic XAUUSD.
    codec_symbol: str = "XAUUSD"
    first_day: date = date(2019, 2, 4)  # a Monday
    days: int = 20  # trading days (weekdays); the data spans the calendar days between the first and the last
    ticks_per_day: int = 1_000_000
    repeats: int = 5  # timed rounds of each comparison (median taken)
    fast_repeats: int = 21  # rounds for millisecond-scale operations (reads, queries)
    slow_repeats: int = 3  # rounds for the backfills (tens of seconds each)
    warmup: bool = True  # one untimed round before timing
    scaling: bool = True  # also measure ours at 1 day and at ``days`` days (cost per tick)
    seed: int = 7
    mode: str = "full"
    #: Stop a comparison after this many seconds of timed rounds (at least MIN_ROUNDS rounds are run).
    budget_seconds: float = 90.0

    @classmethod
    def full(cls) -> BenchConfig:
        return cls()

    @classmethod
    def quick(cls) -> BenchConfig:
        return cls(days=2, ticks_per_day=100_000, repeats=3, fast_repeats=7, slow_repeats=2, scaling=False, mode="quick",
                   budget_seconds=2.0)

    @property
    def trading_days(self) -> list[date]:
        out, day = [], self.first_day
        while len(out) < self.days:
            if day.weekday() < 5:
                out.append(day)
            day += timedelta(days=1)
        return out

    @property
    def day_list(self) -> list[date]:
        """Every calendar day from the first to the last trading day (FX is closed at weekends)."""
        trading = self.trading_days
        return [trading[0] + timedelta(days=i) for i in range((trading[-1] - trading[0]).days + 1)]


MIN_ROUNDS = 3


def median_times(fns: Mapping[str, Callable[[], object]], repeats: int, *, warmup: bool = True,
                 budget: float | None = None) -> dict[str, float]:
    """Median wall time (seconds) of each function over ``repeats`` interleaved rounds.

    Every round runs each function once; the order rotates by one each round so no side always
    goes first (or last) in a noisy stretch. A garbage collection before each call keeps one
    side's garbage from being collected on the other's clock. With a ``budget`` (seconds), rounds
    stop once it is spent and at least ``MIN_ROUNDS`` (or ``repeats``, if fewer) have run.
    """
    names = list(fns)
    if warmup:
        for name in names:
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    started = time.perf_counter()
    for round_ in range(max(1, repeats)):
        if budget is not None and round_ >= MIN_ROUNDS and time.perf_counter() - started > budget:
            break
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            start = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


@dataclass(frozen=True)
class Scaling:
    """Ours at 1 day and at N days, per tick (or per partition for memory): flat is the goal."""

    what: str  # e.g. "ns/tick"
    one_day: float
    n_days: float
    days: int
    ticks_one_day: int
    ticks_n_days: int
    data: str = ""  # what it ran on, when not the figure's own data (e.g. "EURUSD datafeed")

    @property
    def growth(self) -> float:
        return self.n_days / self.one_day if self.one_day else math.nan

    def as_dict(self) -> dict:
        return {
            "unit": self.what, "one_day": self.one_day, "n_days": self.n_days, "days": self.days,
            "ticks_one_day": self.ticks_one_day, "ticks_n_days": self.ticks_n_days, "growth": self.growth,
            "data": self.data or None,
        }


@dataclass
class Figure:
    """One row of the table: ours against its baseline, the ratio and the target it is held to."""

    id: str
    figure: str  # what is measured (table's first column)
    baseline_name: str  # what ours is compared with
    ours: float
    baseline: float
    unit: str  # unit of ``ours`` and ``baseline``
    ratio: float
    target_op: str  # ">=" or "<="
    target_value: float
    note: str = ""
    scaling: Scaling | None = None
    extra: dict = field(default_factory=dict)

    @property
    def target(self) -> str:
        op = "≥" if self.target_op == ">=" else "≤"
        return f"{op} {self.target_value:g}{'×' if self.id != 'parquet_size' else ''}"

    @property
    def met(self) -> bool:
        if not math.isfinite(self.ratio):
            return False
        return self.ratio >= self.target_value if self.target_op == ">=" else self.ratio <= self.target_value

    def as_json(self) -> dict:
        """The row as ``--json`` writes it: the six keys the issue names, then details."""
        return {
            "figure": self.figure,
            "ours": _finite(self.ours),
            "baseline": _finite(self.baseline),
            "ratio": _finite(self.ratio),
            "target": self.target,
            "met": self.met,
            "id": self.id,
            "unit": self.unit,
            "baseline_name": self.baseline_name,
            "target_op": self.target_op,
            "target_value": self.target_value,
            "note": self.note,
            "scaling": self.scaling.as_dict() if self.scaling else None,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN


def speedup(fig_id: str, figure: str, baseline_name: str, work: float, t_ours: float, t_base: float, *,
            unit: str = "M ticks/s", scale: float = 1e-6, target: float, note: str = "") -> Figure:
    """A throughput figure: ours / baseline in ``unit`` (``work`` items per run), ratio = t_base / t_ours."""
    return Figure(fig_id, figure, baseline_name, work / t_ours * scale, work / t_base * scale, unit,
                  t_base / t_ours, ">=", target, note)


def overhead(fig_id: str, figure: str, baseline_name: str, t_ours: float, t_base: float, *, target: float,
             unit: str = "ms", scale: float = 1e3, note: str = "") -> Figure:
    """A cost figure: time of ours / time of the baseline (lower is better)."""
    return Figure(fig_id, figure, baseline_name, t_ours * scale, t_base * scale, unit, t_ours / t_base, "<=", target, note)


# ------------------------------------------------------------------------------------------ machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return math.nan


def machine_info() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "nproc": usable,
        "cpu": _cpu_model(),
        "ram_gib": round(_ram_gib(), 1),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()}",
        "packages": versions,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        # shared machines: how busy it was when the run started says how much to trust absolute numbers
        "load_average": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
    }


# ------------------------------------------------------------------------------------------ rendering
def _num(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if magnitude >= 0.1 else f"{value:.3g}"


def header_lines(config: BenchConfig, machine: dict, elapsed: float | None = None) -> list[str]:
    pkgs = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    lines = [
        f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['ram_gib']} GiB RAM, "
        f"Python {machine['python']}, {machine['platform']}; {pkgs}"
        + (f"; load average {machine['load_average']} at the start." if machine.get("load_average") is not None else "."),
        f"Run: `lake bench{' --quick' if config.mode == 'quick' else ''}` on {machine['date']}: "
        f"{config.symbol}, {config.days} trading day(s) of ~{config.ticks_per_day:,} generated ticks "
        f"(BI5 decoding: one day of generated {config.codec_symbol}) "
        f"({config.day_list[0]}..{config.day_list[-1]}, weekends included as FX has them: closed), "
        f"medians of up to {config.repeats} interleaved rounds ({config.fast_repeats} for reads/queries, "
        f"{config.slow_repeats} for backfills, decode scaling and memory; a comparison stops after {config.budget_seconds:g} s "
        f"once {MIN_ROUNDS} rounds are in)" + (f"; took {elapsed:.0f} s." if elapsed is not None else "."),
    ]
    return lines


def render_table(figures: list[Figure]) -> str:
    lines = [
        "| figure | ours | baseline (same data, same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        ratio = "n/a" if not math.isfinite(f.ratio) else (f"{f.ratio:.2f}" if f.id == "parquet_size" else f"{f.ratio:.2f}×")
        met = "yes" if f.met else "**MISSED**"
        note = f" ({f.note})" if f.note else ""
        lines.append(
            f"| {f.figure}{note} | {_num(f.ours)} {f.unit} | {f.baseline_name}: {_num(f.baseline)} {f.unit} "
            f"| {ratio} | {f.target} | {met} |"
        )
    return "\n".join(lines)


def render_scaling(figures: list[Figure], config: BenchConfig) -> str:
    rows = [f for f in figures if f.scaling is not None]
    if not rows:
        return ""
    span = f"{config.days} trading days ({len(config.day_list)} day-partitions)"
    lines = [
        f"| figure (ours) | 1 day | {span} | {config.days} days / 1 day |",
        "|---|---|---|---|",
    ]
    for f in rows:
        s = f.scaling
        on = f" — on the {s.data}" if s.data else ""
        lines.append(
            f"| {f.figure}{on} | {_num(s.one_day)} {s.what} ({s.ticks_one_day:,} ticks) "
            f"| {_num(s.n_days)} {s.what} ({s.ticks_n_days:,} ticks) | {s.growth:.2f} |"
        )
    return "\n".join(lines)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

"""Strategy/heuristic specs, their parameter sweeps, and vectorised detectors.

A spec file (YAML or JSON, one spec per file) in ``strategies/``::

    name: saw_tooth_v1            # letters, digits, '_' and '-'; starts with a letter
    version: 1                    # integer >= 1; bump when the logic behind the name changes
    kind: saw_tooth               # ma_crossover | bollinger_mean_reversion | breakout | saw_tooth
    params: {window: 5, amp_factor: 1.2, min_count: 3}
    grid: {amp_factor: [1.2, 1.5]}  # optional: one run per combination (a sweep)
    symbols: [EURUSD]             # optional: restrict the runs to these symbols
    bar_interval: 1m              # optional: 1m (default), 5m, 1h or 1d
    description: ...              # optional

Each run gets a stable id (:func:`spec_id`), ``{name}.v{version}.{hash}``, where the hash covers the
kind, bar interval and the resolved parameters (defaults filled in): stating a default or leaving it
out is the same run. Ids are safe as Dagster partition keys and path segments.

Detectors work per symbol over bars in time order and only look back: a position or match at ``t``
uses bars at or before ``t``. Every detector gives a target position (-1/0/+1) per bar and
``signal_matches`` rows ``(spec_id, ts, symbol, score)``. For the trading kinds a match is a bar where
a new position is opened (entry or flip); for ``saw_tooth`` it is the first bar of a detected pattern.

Kinds:

- ``ma_crossover`` (fast, slow): +1 while SMA(fast) of close > SMA(slow), -1 while below.
  Score: the gap (fast - slow) / slow in basis points at the entry bar.
- ``bollinger_mean_reversion`` (window=20, num_std=2.0, exit_z=0.0): z = (close - SMA) / population std
  over ``window`` bars. Long when z < -num_std, held until z >= -exit_z; short when z > num_std, held
  until z <= exit_z. Score: z at entry.
- ``breakout`` (window=20, exit_window=10; Donchian): long when close > the highest high of the previous
  ``window`` bars, held until close < the lowest low of the previous ``exit_window`` bars; short mirrored.
  Score: the breakout distance beyond the channel in basis points (negative for shorts).
- ``saw_tooth`` (window, amp_factor, min_count, baseline_window=4*window): with moves
  m_t = close_t - close_{t-1} and baseline_t = mean |m| over the ``baseline_window`` moves before t, a
  move is a *swing* when m_t != 0 and |m_t| >= amp_factor * baseline_t; an *alternation* is a swing
  whose previous move is a swing of the opposite sign. The pattern is active at t when the last
  ``window`` moves hold at least ``min_count`` alternations (so min_count <= window - 1). The baseline
  is longer than ``window`` so a sustained saw-tooth does not become its own baseline. Score: the
  share of possible alternations present, count / (window - 1). Position: fade the last move
  (-sign(m_t)) while active, flat otherwise.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from lake_resources.validation import LakeValidationError, validate_partition_value, validate_symbol

TS_DTYPE = pl.Datetime("ns", "UTC")
KINDS = ("ma_crossover", "bollinger_mean_reversion", "breakout", "saw_tooth")
BAR_INTERVALS = ("1m", "5m", "1h", "1d")
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_TOP_LEVEL = {"name", "version", "kind", "params", "grid", "symbols", "bar_interval", "description"}

#: Table schemas of the seed design: every spec version ever seen, and every match of every run.
HEURISTIC_DEFS_SCHEMA = {"id": pl.Utf8, "json_spec": pl.Utf8, "added_at": TS_DTYPE}
SIGNAL_MATCHES_SCHEMA = {"spec_id": pl.Utf8, "ts": TS_DTYPE, "symbol": pl.Utf8, "score": pl.Float64}
POSITIONS_SCHEMA = {"ts": TS_DTYPE, "symbol": pl.Utf8, "position": pl.Int8}


class SpecError(ValueError):
    """An invalid strategy spec; names the file and the field."""

    def __init__(self, source: str, field_name: str, problem: str):
        self.source, self.field, self.problem = source, field_name, problem
        super().__init__(f"{source}: {field_name}: {problem}")


# --- parameters of each kind ---------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    type: type  # int or float
    minimum: float
    exclusive: bool = False  # minimum itself not allowed
    default: Any = None  # None = required; a callable derives it from the other resolved parameters

    def coerce(self, value: Any, source: str, field_name: str) -> int | float:
        bound = f"{'>' if self.exclusive else '>='} {self.minimum:g}"
        wanted = f"{'an integer' if self.type is int else 'a number'} {bound}"
        ok_type = isinstance(value, int) if self.type is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or (isinstance(value, float) and not math.isfinite(value)):
            raise SpecError(source, field_name, f"expected {wanted}, got {value!r}")
        if value < self.minimum or (self.exclusive and value == self.minimum):
            raise SpecError(source, field_name, f"expected {wanted}, got {value!r}")
        return self.type(value)


PARAMS: dict[str, dict[str, Param]] = {
    "ma_crossover": {"fast": Param(int, 1), "slow": Param(int, 2)},
    "bollinger_mean_reversion": {
        "window": Param(int, 2, default=20),
        "num_std": Param(float, 0.0, exclusive=True, default=2.0),
        "exit_z": Param(float, 0.0, default=0.0),
    },
    "breakout": {"window": Param(int, 1, default=20), "exit_window": Param(int, 1, default=10)},
    "saw_tooth": {
        "window": Param(int, 2),
        "amp_factor": Param(float, 0.0, exclusive=True),
        "min_count": Param(int, 1),
        "baseline_window": Param(int, 2, default=lambda resolved: 4 * resolved["window"]),
    },
}


def _cross_check(kind: str, params: dict[str, Any]) -> str | None:
    """A problem between parameters of one run, or None."""
    if kind == "ma_crossover" and not params["fast"] < params["slow"]:
        return f"fast ({params['fast']}) must be < slow ({params['slow']})"
    if kind == "bollinger_mean_reversion" and not params["exit_z"] < params["num_std"]:
        return f"exit_z ({params['exit_z']}) must be < num_std ({params['num_std']})"
    if kind == "saw_tooth" and not params["min_count"] <= params["window"] - 1:
        return f"min_count ({params['min_count']}) must be <= window - 1 ({params['window'] - 1})"
    return None


def _resolve_params(kind: str, given: Mapping[str, Any], source: str, where: str) -> dict[str, Any]:
    schema = PARAMS[kind]
    resolved = {}
    for key in sorted(schema):
        param = schema[key]
        if key in given:
            resolved[key] = param.coerce(given[key], source, f"{where}.{key}")
        elif param.default is None:
            raise SpecError(source, f"{where}.{key}", f"required for kind {kind}")
    for key in sorted(schema):  # defaults that depend on other parameters come last
        if key not in resolved:
            default = schema[key].default
            resolved[key] = default(resolved) if callable(default) else default
    return dict(sorted(resolved.items()))


# --- specs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrategySpec:
    name: str
    version: int
    kind: str
    params: dict[str, Any]  # as given (grid keys excluded), validated
    grid: dict[str, list[Any]] = field(default_factory=dict)
    symbols: tuple[str, ...] | None = None
    bar_interval: str = "1m"
    description: str = ""
    source: str = "<memory>"


@dataclass(frozen=True)
class RunSpec:
    """One concrete run: a spec with every parameter resolved (one grid combination)."""

    spec_id: str
    name: str
    version: int
    kind: str
    params: dict[str, Any]
    symbols: tuple[str, ...] | None
    bar_interval: str
    source: str

    def to_json(self) -> str:
        """Canonical JSON of the run (what ``heuristic_defs.json_spec`` stores)."""
        return _canonical(
            {
                "id": self.spec_id,
                "name": self.name,
                "version": self.version,
                "kind": self.kind,
                "params": self.params,
                "symbols": list(self.symbols) if self.symbols is not None else None,
                "bar_interval": self.bar_interval,
            }
        )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _require(raw: Mapping[str, Any], key: str, source: str) -> Any:
    if key not in raw:
        raise SpecError(source, key, "missing")
    return raw[key]


def parse_spec(raw: Any, source: str = "<memory>") -> StrategySpec:
    """Validate one spec mapping (as read from a file); raises :class:`SpecError`."""
    if not isinstance(raw, Mapping):
        raise SpecError(source, "(top level)", f"expected a mapping of fields, got {type(raw).__name__}")
    if unknown := sorted(set(map(str, raw)) - _TOP_LEVEL):
        raise SpecError(source, unknown[0], f"unknown field (allowed: {', '.join(sorted(_TOP_LEVEL))})")
    name = _require(raw, "name", source)
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(source, "name", f"expected letters, digits, '_' or '-' starting with a letter, got {name!r}")
    version = _require(raw, "version", source)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SpecError(source, "version", f"expected an integer >= 1, got {version!r}")
    kind = _require(raw, "kind", source)
    if kind not in KINDS:
        raise SpecError(source, "kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    params = {} if raw.get("params") is None else raw["params"]  # an empty YAML "params:" reads as None
    if not isinstance(params, Mapping):
        raise SpecError(source, "params", f"expected a mapping, got {params!r}")
    grid = {} if raw.get("grid") is None else raw["grid"]
    if not isinstance(grid, Mapping):
        raise SpecError(source, "grid", f"expected a mapping of parameter -> list, got {grid!r}")
    known = PARAMS[kind]
    for where, keys in (("params", params), ("grid", grid)):
        for key in keys:
            if key not in known:
                known_list = ", ".join(sorted(known))
                raise SpecError(source, f"{where}.{key}", f"unknown parameter for kind {kind} (known: {known_list})")
    checked_grid: dict[str, list[Any]] = {}
    for key in sorted(grid):
        values = grid[key]
        if key in params:
            raise SpecError(source, f"grid.{key}", "also set in params: give it in one place")
        if not isinstance(values, list) or not values:
            raise SpecError(source, f"grid.{key}", f"expected a non-empty list, got {values!r}")
        coerced = [known[key].coerce(v, source, f"grid.{key}[{i}]") for i, v in enumerate(values)]
        if len(set(coerced)) != len(coerced):
            raise SpecError(source, f"grid.{key}", f"repeated values in {values!r}")
        checked_grid[key] = coerced
    checked_params = {k: known[k].coerce(v, source, f"params.{k}") for k, v in sorted(params.items())}
    symbols = raw.get("symbols")
    if symbols is not None:
        if not isinstance(symbols, list) or not symbols:
            raise SpecError(source, "symbols", f"expected a non-empty list of symbols, got {symbols!r}")
        try:
            symbols = tuple(validate_symbol(s) for s in symbols)
        except LakeValidationError as exc:
            raise SpecError(source, "symbols", str(exc)) from None
    bar_interval = raw.get("bar_interval", "1m")
    if bar_interval not in BAR_INTERVALS:
        raise SpecError(source, "bar_interval", f"expected one of {', '.join(BAR_INTERVALS)}, got {bar_interval!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SpecError(source, "description", f"expected text, got {description!r}")
    spec = StrategySpec(name, version, kind, checked_params, checked_grid, symbols, bar_interval, description, source)
    expand_grid(spec)  # every combination must be a valid run: fail at load time, naming the file
    return spec


def load_spec(path: Path) -> StrategySpec:
    source = str(path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(source, "(file)", f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    return parse_spec(raw, source)


def load_specs(directory: str | Path) -> list[StrategySpec]:
    """Every ``*.yaml``/``*.yml``/``*.json`` spec in ``directory`` (sorted by file name), validated.

    Other files are not specs and are left alone. Two files claiming one ``name`` + ``version`` are
    an error: a name and version must mean one definition.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SpecError(str(directory), "(directory)", "not a directory")
    specs = [load_spec(p) for p in sorted(directory.iterdir()) if p.is_file() and p.suffix in SPEC_SUFFIXES]
    seen: dict[tuple[str, int], str] = {}
    for spec in specs:
        key = (spec.name, spec.version)
        if key in seen:
            raise SpecError(spec.source, "name", f"{spec.name} version {spec.version} is also defined in {seen[key]}")
        seen[key] = spec.source
    return specs


def _digest(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()[:10]


def spec_id(spec: StrategySpec | RunSpec) -> str:
    """``{name}.v{version}.{hash}``: stable across processes and machines, safe as a partition key.

    A spec without a grid has the id of its single run.
    """
    if isinstance(spec, RunSpec):
        return spec.spec_id
    payload: dict[str, Any] = {"kind": spec.kind, "bar_interval": spec.bar_interval}
    if spec.grid:
        payload["params"] = spec.params
        payload["grid"] = spec.grid
    else:
        payload["params"] = _resolve_params(spec.kind, spec.params, spec.source, "params")
    return validate_partition_value(f"{spec.name}.v{spec.version}.{_digest(payload)}")


def expand_grid(spec: StrategySpec) -> list[RunSpec]:
    """One run per combination of the grid (the product, keys in sorted order); one run without a grid."""
    keys = sorted(spec.grid)
    runs = []
    for combo in itertools.product(*(spec.grid[k] for k in keys)):
        chosen = dict(zip(keys, combo))
        where = f"grid combination {chosen}" if chosen else "params"
        params = _resolve_params(spec.kind, {**spec.params, **chosen}, spec.source, "params")
        if problem := _cross_check(spec.kind, params):
            raise SpecError(spec.source, where, problem)
        digest = _digest({"kind": spec.kind, "bar_interval": spec.bar_interval, "params": params})
        run_id = validate_partition_value(f"{spec.name}.v{spec.version}.{digest}")
        runs.append(
            RunSpec(run_id, spec.name, spec.version, spec.kind, params, spec.symbols, spec.bar_interval, spec.source)
        )
    return runs


def heuristic_defs_rows(runs: list[RunSpec], added_at: datetime) -> pl.DataFrame:
    """Rows of ``heuristic_defs(id, json_spec, added_at)`` for these runs (``added_at`` tz-aware)."""
    if added_at.tzinfo is None:
        raise ValueError("heuristic_defs added_at must be timezone-aware (UTC)")
    return pl.DataFrame(
        {"id": [r.spec_id for r in runs], "json_spec": [r.to_json() for r in runs], "added_at": [added_at] * len(runs)},
        schema={"id": pl.Utf8, "json_spec": pl.Utf8, "added_at": pl.Datetime("us", "UTC")},
    ).with_columns(pl.col("added_at").cast(TS_DTYPE))


# --- detectors -----------------------------------------------------------------------------------


def _sma(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the ``window`` values ending at each t (NaN before); each window reduced on its own."""
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        out[window - 1 :] = np.lib.stride_tricks.sliding_window_view(values, window).mean(axis=1)
    return out


def _window_reduce(values: np.ndarray, window: int, reduce: Callable[..., np.ndarray]) -> np.ndarray:
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        out[window - 1 :] = reduce(np.lib.stride_tricks.sliding_window_view(values, window), axis=1)
    return out


def _previous(values: np.ndarray, window: int, reduce: Callable[..., np.ndarray]) -> np.ndarray:
    """``reduce`` over the ``window`` values *before* t (excluding t)."""
    current = _window_reduce(values, window, reduce)
    return np.concatenate(([np.nan], current[:-1]))


def _held_positions(long_entry, short_entry, long_exit, short_exit) -> np.ndarray:
    """Entry/exit signals -> positions without a loop: a side is held from its latest entry until an
    exit for that side comes after it (or the opposite entry flips it)."""
    n = len(long_entry)
    idx = np.arange(n)
    entry_side = np.where(long_entry, 1, np.where(short_entry, -1, 0)).astype(np.int8)
    last_entry = np.maximum.accumulate(np.where(entry_side != 0, idx, -1))
    side = np.where(last_entry >= 0, entry_side[np.maximum(last_entry, 0)], 0)
    last_long_exit = np.maximum.accumulate(np.where(long_exit, idx, -1))
    last_short_exit = np.maximum.accumulate(np.where(short_exit, idx, -1))
    still_open = np.where(side > 0, last_long_exit < last_entry, last_short_exit < last_entry)
    return np.where(still_open, side, 0).astype(np.int8)


def _entries(position: np.ndarray) -> np.ndarray:
    """Bars where a new position is opened: flat -> side, or a flip."""
    before = np.concatenate(([0], position[:-1]))
    return (position != 0) & (position != before)


def _ma_crossover(bars: pl.DataFrame, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    close = bars["close"].to_numpy()
    fast, slow = _sma(close, p["fast"]), _sma(close, p["slow"])
    position = np.sign(np.nan_to_num(fast - slow)).astype(np.int8)  # flat until slow bars exist
    hits = _entries(position)
    return position, hits, ((fast - slow) / slow * 1e4)[hits]


def _bollinger(bars: pl.DataFrame, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    close = bars["close"].to_numpy()
    mean = _sma(close, p["window"])
    std = _window_reduce(close, p["window"], np.std)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 0, (close - mean) / std, np.where(std == 0, 0.0, np.nan))
        position = _held_positions(z < -p["num_std"], z > p["num_std"], z >= -p["exit_z"], z <= p["exit_z"])
    hits = _entries(position)
    return position, hits, z[hits]


def _breakout(bars: pl.DataFrame, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    close, high, low = (bars[c].to_numpy() for c in ("close", "high", "low"))
    upper, lower = _previous(high, p["window"], np.max), _previous(low, p["window"], np.min)
    exit_low, exit_high = _previous(low, p["exit_window"], np.min), _previous(high, p["exit_window"], np.max)
    with np.errstate(invalid="ignore"):
        position = _held_positions(close > upper, close < lower, close < exit_low, close > exit_high)
    hits = _entries(position)
    channel = np.where(position > 0, upper, lower)
    return position, hits, ((close - channel) / channel * 1e4)[hits]


def saw_tooth_state(close: np.ndarray, window: int, amp_factor: float, min_count: int, baseline_window: int):
    """Moves, alternation counts and the active mask of the saw-tooth pattern (see the module doc)."""
    move = np.diff(close, prepend=np.nan)
    baseline = _previous(np.abs(move), baseline_window, np.mean)
    with np.errstate(invalid="ignore"):
        swing = (move != 0) & (np.abs(move) >= amp_factor * baseline)
    direction = np.sign(np.nan_to_num(move))
    alternation = swing & np.concatenate(([False], swing[:-1])) & (direction == -np.concatenate(([0], direction[:-1])))
    count = _window_reduce(alternation.astype(np.float64), window - 1, np.sum)
    active = np.nan_to_num(count) >= min_count
    return move, count, active


def _saw_tooth(bars: pl.DataFrame, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    move, count, active = saw_tooth_state(
        bars["close"].to_numpy(), p["window"], p["amp_factor"], p["min_count"], p["baseline_window"]
    )
    position = np.where(active, -np.sign(np.nan_to_num(move)), 0).astype(np.int8)
    onset = active & ~np.concatenate(([False], active[:-1]))
    return position, onset, count[onset] / (p["window"] - 1)


DETECTORS: dict[str, Callable[[pl.DataFrame, dict[str, Any]], tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
    "ma_crossover": _ma_crossover,
    "bollinger_mean_reversion": _bollinger,
    "breakout": _breakout,
    "saw_tooth": _saw_tooth,
}
_NEEDS = {
    "ma_crossover": ("close",),
    "bollinger_mean_reversion": ("close",),
    "breakout": ("close", "high", "low"),
    "saw_tooth": ("close",),
}


@dataclass(frozen=True)
class Detection:
    positions: pl.DataFrame  # ts, symbol, position (Int8), one row per bar
    matches: pl.DataFrame  # spec_id, ts, symbol, score


def detect(run: RunSpec, bars: pl.DataFrame) -> Detection:
    """Run one heuristic over bars (one or more symbols; restricted to ``run.symbols`` when set)."""
    needed = ("ts", "symbol", *_NEEDS[run.kind])
    if missing := [c for c in needed if c not in bars.columns]:
        raise ValueError(f"detect {run.spec_id}: bars lack column(s) {missing}")
    if run.symbols is not None:
        bars = bars.filter(pl.col("symbol").is_in(list(run.symbols)))
    if (nulls := bars.select(pl.col(needed).null_count()).row(0)) and any(nulls):
        raise ValueError(f"detect {run.spec_id}: nulls in {dict(zip(needed, nulls))}")
    positions, matches = [], []
    for part in bars.sort("symbol", "ts").partition_by("symbol", maintain_order=True):
        symbol = part["symbol"][0]
        if (dup := part["ts"].is_duplicated()).any():
            raise ValueError(f"detect {run.spec_id}: duplicate bar for {symbol} at {part['ts'].filter(dup)[0]}")
        position, hits, score = DETECTORS[run.kind](part, run.params)
        positions.append(
            pl.DataFrame({"ts": part["ts"], "symbol": part["symbol"], "position": pl.Series(position, dtype=pl.Int8)})
        )
        matches.append(
            pl.DataFrame(
                {
                    "spec_id": run.spec_id,
                    "ts": part["ts"].filter(pl.Series(hits)),
                    "symbol": symbol,
                    "score": score.astype(np.float64),
                },
                schema=SIGNAL_MATCHES_SCHEMA,
            )
        )
    return Detection(
        positions=pl.concat(positions) if positions else pl.DataFrame(schema=POSITIONS_SCHEMA),
        matches=pl.concat(matches) if matches else pl.DataFrame(schema=SIGNAL_MATCHES_SCHEMA),
    )


# --- scoring against labelled events -------------------------------------------------------------


def precision_recall_f1(matches: pl.DataFrame, labels: pl.DataFrame, tolerance: timedelta) -> dict[str, float]:
    """Event-level scores with a time tolerance, per symbol.

    A match is correct when a label of its symbol lies within ``tolerance`` of it; a label is found
    when a match of its symbol lies within ``tolerance``. precision = correct matches / matches,
    recall = found labels / labels, f1 their harmonic mean; a ratio with nothing to count is 0.0.
    """
    for what, frame in (("matches", matches), ("labels", labels)):
        if missing := [c for c in ("ts", "symbol") if c not in frame.columns]:
            raise ValueError(f"{what}: missing column(s) {missing}")

    def near(left: pl.DataFrame, right: pl.DataFrame) -> int:
        if left.height == 0 or right.height == 0:
            return 0
        right = right.select("symbol", pl.col("ts"), pl.col("ts").alias("other")).sort("ts")
        # sorted by ts overall, so sorted within every symbol group (polars cannot check that itself)
        joined = left.select("ts", "symbol").sort("ts").join_asof(
            right, on="ts", by="symbol", strategy="nearest", tolerance=tolerance, check_sortedness=False
        )
        return int(joined["other"].is_not_null().sum())

    correct, found = near(matches, labels), near(labels, matches)
    precision = correct / matches.height if matches.height else 0.0
    recall = found / labels.height if labels.height else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "correct_matches": float(correct),
        "found_labels": float(found),
        "matches": float(matches.height),
        "labels": float(labels.height),
    }

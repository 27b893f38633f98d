"""Strategy specs: their parameters per kind, parsing and loading YAML/JSON specs, grid expansion and
the stable run ids, and the ``heuristic_defs`` rows."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from lake_resources.catalog.validation import LakeValidationError, validate_partition_value, validate_symbol

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

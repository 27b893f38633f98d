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

Modules: ``specs`` (parameters, specs, ids), ``detectors`` (detection, scoring). Everything is
re-exported here.
"""

from lake_resources.research.heuristics.detectors import (
    DETECTORS,
    Detection,
    detect,
    precision_recall_f1,
    saw_tooth_state,
)
from lake_resources.research.heuristics.specs import (
    BAR_INTERVALS,
    HEURISTIC_DEFS_SCHEMA,
    KINDS,
    PARAMS,
    POSITIONS_SCHEMA,
    SIGNAL_MATCHES_SCHEMA,
    SPEC_SUFFIXES,
    TS_DTYPE,
    Param,
    RunSpec,
    SpecError,
    StrategySpec,
    expand_grid,
    heuristic_defs_rows,
    load_spec,
    load_specs,
    parse_spec,
    spec_id,
)

__all__ = [
    "BAR_INTERVALS",
    "DETECTORS",
    "Detection",
    "HEURISTIC_DEFS_SCHEMA",
    "KINDS",
    "PARAMS",
    "POSITIONS_SCHEMA",
    "Param",
    "RunSpec",
    "SIGNAL_MATCHES_SCHEMA",
    "SPEC_SUFFIXES",
    "SpecError",
    "StrategySpec",
    "TS_DTYPE",
    "detect",
    "expand_grid",
    "heuristic_defs_rows",
    "load_spec",
    "load_specs",
    "parse_spec",
    "precision_recall_f1",
    "saw_tooth_state",
    "spec_id",
]

"""The detectors (one per kind: positions and entries per bar, looking back only) and the scoring of
matches against labelled events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from lake_resources.research.heuristics.specs import POSITIONS_SCHEMA, SIGNAL_MATCHES_SCHEMA, RunSpec

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

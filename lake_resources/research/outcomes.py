"""Outcome labels: precision, recall and F1 of a heuristic's signals against what the market then did.

Definition (also in the README, "Leaderboard"):

- Horizon ``H``: the run's own holding period, the median number of bars from a trade's entry to its
  exit (1 bar when it made no closed trade).
- Cost of a round trip at bar ``t``: the quoted spread relative to mid (``(ask - bid) / mid`` at the
  bar's close; 0 where the bars carry no quotes) plus twice ``commission_bps``.
- Label of bar ``t``: +1 when the mid moves up by more than that cost from ``t`` to ``t + H``
  (``close[t+H] / close[t] - 1 > cost``), -1 when it moves down by more, else 0; the last ``H`` bars
  have no label. A maximal run of consecutive bars with the same non-zero label is one *opportunity*.
- A *signal* is an entry of the heuristic: a bar where its position becomes long (+1) or short (-1).
  It is correct when the label of its bar has the sign of the position entered.
- precision = correct signals / signals; recall = opportunities holding at least one correct signal /
  opportunities; F1 their harmonic mean. A ratio with nothing to count is 0.0 (as for labels files).
"""

from __future__ import annotations

import numpy as np
import polars as pl


def holding_bars(bars_ts: pl.Series, trades: pl.DataFrame) -> int:
    """Median bars from entry to exit over the closed trades (at least 1)."""
    if trades.height == 0 or "exit_ts" not in trades.columns:
        return 1
    closed = trades.filter(pl.col("exit_ts").is_not_null())
    if closed.height == 0:
        return 1
    ts = bars_ts.to_numpy()
    entry = np.searchsorted(ts, closed["entry_ts"].cast(bars_ts.dtype).to_numpy())
    exit_ = np.searchsorted(ts, closed["exit_ts"].cast(bars_ts.dtype).to_numpy())
    return max(1, int(np.median(exit_ - entry)))


def outcome_labels(bars: pl.DataFrame, horizon: int, commission_bps: float = 0.0) -> np.ndarray:
    """+1 / -1 / 0 per bar (see the module doc); 0 for the last ``horizon`` bars."""
    close = bars["close"].cast(pl.Float64).to_numpy()
    n = len(close)
    labels = np.zeros(n, dtype=np.int8)
    if n <= horizon:
        return labels
    if "bid_close" in bars.columns and "ask_close" in bars.columns:
        bid = bars["bid_close"].cast(pl.Float64).to_numpy()
        ask = bars["ask_close"].cast(pl.Float64).to_numpy()
        spread = np.nan_to_num((ask - bid) / close, nan=0.0)
    else:
        spread = np.zeros(n)
    cost = np.maximum(spread, 0.0) + 2.0 * commission_bps * 1e-4
    move = close[horizon:] / close[:-horizon] - 1.0
    labels[:-horizon] = np.where(move > cost[:-horizon], 1, np.where(move < -cost[:-horizon], -1, 0))
    return labels


def outcome_scores(bars: pl.DataFrame, positions: pl.Series | np.ndarray, trades: pl.DataFrame,
                   commission_bps: float = 0.0) -> dict[str, float]:
    """precision, recall, F1, opportunities, signals and the horizon of one run on one symbol's bars."""
    position = np.sign(np.asarray(positions, dtype=np.float64)).astype(np.int8)
    horizon = holding_bars(bars["ts"], trades)
    labels = outcome_labels(bars, horizon, commission_bps)
    previous = np.concatenate(([0], position[:-1]))
    signals = np.flatnonzero((position != 0) & (position != previous))
    correct = signals[labels[signals] == position[signals]]
    # opportunities: runs of equal non-zero labels, numbered 1..k (0 where unlabelled)
    starts = (labels != 0) & (labels != np.concatenate(([0], labels[:-1])))
    episode = np.where(labels != 0, np.cumsum(starts), 0)
    opportunities = int(starts.sum())
    found = len(np.unique(episode[correct])) if len(correct) else 0
    precision = len(correct) / len(signals) if len(signals) else 0.0
    recall = found / opportunities if opportunities else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"outcome_precision": precision, "outcome_recall": recall, "outcome_f1": f1,
            "outcome_opportunities": float(opportunities), "outcome_signals": float(len(signals)),
            "outcome_horizon_bars": float(horizon)}

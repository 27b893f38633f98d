"""Outcome labels: F1 of a heuristic's signals against what the market then did, checked against a
plain-Python implementation of the README's definition, and through the leaderboard asset."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from lake_resources.research.outcomes import outcome_scores

T0 = datetime(2019, 2, 4, tzinfo=timezone.utc)


def naive(close, bid, ask, position, trades, commission_bps):
    """The definition, loop by loop."""
    n = len(close)
    ts = [T0 + timedelta(minutes=i) for i in range(n)]
    spans = [ts.index(x) - ts.index(e) for e, x in trades if x is not None]
    h = max(1, int(statistics.median(spans))) if spans else 1
    labels = []
    for t in range(n):
        if t + h >= n:
            labels.append(0)
            continue
        cost = max((ask[t] - bid[t]) / close[t], 0.0) + 2 * commission_bps * 1e-4
        move = close[t + h] / close[t] - 1
        labels.append(1 if move > cost else -1 if move < -cost else 0)
    episodes, current = [], None
    for t, lab in enumerate(labels):
        if lab != 0 and (t == 0 or labels[t - 1] != lab):
            current = [t]
            episodes.append(current)
        elif lab != 0:
            current.append(t)
    signals = [t for t in range(n) if position[t] != 0 and position[t] != (position[t - 1] if t else 0)]
    correct = [t for t in signals if labels[t] == position[t]]
    found = sum(any(t in e for t in correct) for e in episodes)
    p = len(correct) / len(signals) if signals else 0.0
    r = found / len(episodes) if episodes else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0), len(episodes), h


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_outcome_scores_follow_the_definition(seed):
    """Random walks with spreads, positions and trades: precision, recall, F1, opportunities and the
    horizon equal a loop-by-loop implementation of the definition."""
    rng = np.random.default_rng(seed)
    n = 400
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 4e-4, n)))
    spread = rng.uniform(0, 2e-4, n) * close
    bid, ask = close - spread / 2, close + spread / 2
    position = np.repeat(rng.choice([-1, 0, 1], n // 20), 20)
    ts = [T0 + timedelta(minutes=i) for i in range(n)]
    trades = []
    for i in range(1, n):
        if position[i] != position[i - 1] and position[i] != 0:
            j = next((k for k in range(i + 1, n) if position[k] != position[i]), None)
            trades.append((ts[i], ts[j] if j is not None else None))
    bars = pl.DataFrame({"ts": ts, "close": close, "bid_close": bid, "ask_close": ask}).with_columns(
        pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    trade_frame = pl.DataFrame({"entry_ts": [e for e, _ in trades], "exit_ts": [x for _, x in trades]},
                               schema={"entry_ts": pl.Datetime("ns", "UTC"), "exit_ts": pl.Datetime("ns", "UTC")})
    got = outcome_scores(bars, pl.Series(position), trade_frame, commission_bps=0.5)
    p, r, f1, episodes, h = naive(close, bid, ask, position, trades, 0.5)
    assert got["outcome_horizon_bars"] == h > 1
    assert got["outcome_opportunities"] == episodes > 0
    assert (got["outcome_precision"], got["outcome_recall"], got["outcome_f1"]) == pytest.approx((p, r, f1))
    assert 0 < got["outcome_f1"] < 1


def test_a_perfect_signal_scores_one_and_no_signal_scores_zero():
    """Entering long at the start of the only up-move, and never again: precision = recall = F1 = 1;
    never entering: all 0."""
    close = [1.0] * 10 + [1.0 + 0.01 * i for i in range(1, 11)] + [1.1] * 10
    ts = [T0 + timedelta(minutes=i) for i in range(len(close))]
    bars = pl.DataFrame({"ts": ts, "close": close})
    # held 2 bars: entry at the last flat bar before the rise (labels +1 from bar 8 to 18)
    position = [0] * 8 + [1] * 2 + [0] * 20
    trades = pl.DataFrame({"entry_ts": [ts[8]], "exit_ts": [ts[10]]})
    perfect = outcome_scores(bars, pl.Series(position), trades)
    assert (perfect["outcome_precision"], perfect["outcome_recall"], perfect["outcome_f1"]) == (1.0, 1.0, 1.0)
    none = outcome_scores(bars, pl.Series([0] * len(close)), trades.clear())
    assert (none["outcome_precision"], none["outcome_recall"], none["outcome_f1"]) == (0.0, 0.0, 0.0)

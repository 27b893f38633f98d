"""Backtest engine: vectorised MA crossover vs the plain loop, accounting vs an independent loop,
metrics vs independently computed values, bars/ticks price selection, determinism, bad input."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from lake_resources.research import backtest as B
from lake_tests.test_features import minute_bars, real_eurusd_ticks


@pytest.fixture(scope="module")
def ticks(datafeed_dir: Path) -> pl.DataFrame:
    return real_eurusd_ticks(datafeed_dir)


def synthetic_ticks(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random walk quoted on a 1e-5 grid with a 1-3 point spread, like an FX pair."""
    rng = np.random.default_rng(seed)
    mid_points = 114_000 + np.cumsum(rng.integers(-2, 3, n))
    spread_points = rng.integers(1, 4, n)
    bid = mid_points / 1e5
    return bid, (mid_points + spread_points) / 1e5


# --- MA crossover: vectorised vs the reference loop --------------------------------------------


@pytest.mark.parametrize(("fast", "slow"), [(1, 2), (5, 20), (10, 11), (50, 200), (300, 3000)])
def test_vectorised_ma_crossover_pnl_is_bit_identical_to_the_loop(ticks: pl.DataFrame, fast: int, slow: int) -> None:
    # Exact equality, not a tolerance: both evaluate the same float operations in the same order
    # (sequential prefix sums, (S[i+1]-S[i+1-w])/w, left-to-right PnL sum), so any difference is a bug.
    bid, ask = ticks["bid"].to_numpy(), ticks["ask"].to_numpy()  # 136,741 real EURUSD ticks
    vectorised = B.ma_crossover_backtest_ticks(bid, ask, fast, slow)
    assert vectorised == B.ma_crossover_backtest_loop(bid.tolist(), ask.tolist(), fast, slow)
    sbid, sask = synthetic_ticks(100_000, seed=fast * 1000 + slow)
    assert B.ma_crossover_backtest_ticks(sbid, sask, fast, slow) == B.ma_crossover_backtest_loop(sbid, sask, fast, slow)
    # The general engine on the same positions books the same PnL (it sums the same cash flows in order).
    positions = B.ma_crossover_positions((bid + ask) * 0.5, fast, slow)
    assert B.backtest_ticks(ticks, positions).metrics["total_pnl"] == vectorised


def test_ma_crossover_positions_follow_pandas_rolling_means(ticks: pl.DataFrame) -> None:
    mid = ((ticks["bid"] + ticks["ask"]) / 2).to_numpy()
    got = B.ma_crossover_positions(mid, 20, 100)
    gap = pd.Series(mid).rolling(20).mean() - pd.Series(mid).rolling(100).mean()
    clear = (gap.abs() > 1e-9).to_numpy()  # away from ties, where rounding could decide the sign
    assert (got[:99] == 0).all()
    np.testing.assert_array_equal(got[clear], np.sign(gap.to_numpy()[clear]).astype(np.int8))
    assert clear.sum() > 0.9 * len(mid)


def test_ma_crossover_rejects_bad_windows_and_prices() -> None:
    with pytest.raises(B.BacktestInputError, match="fast < slow"):
        B.ma_crossover_positions(np.ones(10), 5, 5)
    bid = np.full(10, 1.0)
    bid[7] = np.nan
    with pytest.raises(B.BacktestInputError, match="non-finite value at observation 7"):
        B.ma_crossover_backtest_ticks(bid, bid + 1e-5, 2, 3)
    short_bid, short_ask = synthetic_ticks(50, seed=1)  # fewer ticks than the slow window: never trades
    assert B.ma_crossover_backtest_ticks(short_bid, short_ask, 10, 60) == 0.0
    assert B.ma_crossover_backtest_loop(short_bid, short_ask, 10, 60) == 0.0


# --- the general engine --------------------------------------------------------------------------


def _ts(n: int, step: timedelta = timedelta(minutes=1)) -> np.ndarray:
    start = np.datetime64(datetime(2019, 2, 4), "ns").astype(np.int64)
    return start + np.arange(n, dtype=np.int64) * int(step.total_seconds() * 1e9)


def test_hand_worked_round_trips() -> None:
    bid = np.array([1.0000, 1.0004, 1.0010, 1.0005])
    ask = np.array([1.0002, 1.0006, 1.0012, 1.0007])
    # long 1 at the ask 1.0002; flip short at bar 2 (sell 2 at the bid 1.0010); flat at the end
    # (buy 1 at the ask 1.0007). Trades: +1.0010-1.0002 = +0.0008, then 1.0010-1.0007 = +0.0003.
    result = B.backtest_arrays(_ts(4), bid, ask, np.array([1, 1, -1, -1]))
    assert result.metrics["total_pnl"] == pytest.approx(0.0011, abs=1e-12)
    trades = result.trades
    assert trades["side"].to_list() == [1, -1]
    assert trades["entry_price"].to_list() == [1.0002, 1.0010]
    assert trades["exit_price"].to_list() == [1.0010, 1.0007]
    assert trades["pnl"].to_list() == pytest.approx([0.0008, 0.0003], abs=1e-12)
    assert trades["exit_ts"].to_list() == result.equity["ts"].gather([2, 3]).to_list()
    assert result.metrics["hit_rate"] == 1.0 and result.metrics["trade_count"] == 2
    capital = 1.0001  # first mid x largest position
    assert result.metrics["initial_capital"] == pytest.approx(capital)
    assert result.metrics["turnover"] == pytest.approx((1.0002 + 2 * 1.0010 + 1.0007) / capital)
    # equity marks a long at the bid, a short at the ask: bar 0 shows the spread paid
    assert result.equity["equity"].to_list() == pytest.approx(
        [capital - 0.0002, capital + 0.0002, capital + 0.0008 - 0.0002, capital + 0.0011], abs=1e-12
    )
    with_costs = B.backtest_arrays(_ts(4), bid, ask, np.array([1, 1, -1, -1]), commission_per_unit=1e-5, commission_bps=1.0)
    traded_units, traded_notional = 4, 1.0002 + 2 * 1.0010 + 1.0007
    assert with_costs.metrics["commission"] == pytest.approx(traded_units * 1e-5 + traded_notional * 1e-4)
    assert with_costs.metrics["total_pnl"] == pytest.approx(0.0011 - with_costs.metrics["commission"], abs=1e-12)


def reference_accounting(bid, ask, target, per_unit, bps, capital):
    """An independent plain loop: fills leg by leg, trades as runs of one sign, equity at liquidation."""
    position, cash = 0.0, 0.0
    equity, trades, current = [], [], None
    n = len(bid)
    for i in range(n):
        wanted = float(target[i]) if i < n - 1 else 0.0
        if wanted != position:
            price = ask[i] if wanted > position else bid[i]
            flips = position != 0 and np.sign(wanted) != np.sign(position)
            legs = [(-position, True), (wanted, False)] if flips else [(wanted - position, False)]
            for units, closing in legs:
                if units == 0:
                    continue
                flow = -units * price - abs(units) * (per_unit + price * bps * 1e-4)
                cash += flow
                if current is None:
                    current = {"entry": i, "side": int(np.sign(units)), "pnl": 0.0, "entry_price": price, "units": 0.0}
                current["pnl"] += flow
                if closing:
                    current.update(exit=i, exit_price=price)
                    trades.append(current)
                    current = None
            position = wanted
            if current is not None:
                current["units"] = max(current["units"], abs(position))
                if position == 0:
                    current.update(exit=i, exit_price=price)
                    trades.append(current)
                    current = None
        mark = bid[i] if position > 0 else ask[i]
        equity.append(capital + cash + position * mark)
    return equity, trades


def test_engine_matches_an_independent_accounting_loop(ticks: pl.DataFrame) -> None:
    part = ticks.head(20_000)
    rng = np.random.default_rng(11)
    changes = np.sort(rng.choice(part.height, 400, replace=False))
    sizes = rng.choice([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], len(changes))
    target = np.zeros(part.height)
    for at, size in zip(changes, sizes):
        target[at:] = size
    bid, ask = part["bid"].to_list(), part["ask"].to_list()
    capital = 2.5
    result = B.backtest_ticks(part, target, commission_per_unit=2e-6, commission_bps=0.3, initial_capital=capital)
    equity, trades = reference_accounting(bid, ask, target, 2e-6, 0.3, capital)
    np.testing.assert_allclose(result.equity["equity"].to_numpy(), equity, rtol=1e-12)
    got = result.trades
    assert got.height == len(trades) > 100
    ts = part["ts"]
    assert got["entry_ts"].to_list() == [ts[t["entry"]] for t in trades]
    assert got["exit_ts"].to_list() == [ts[t["exit"]] for t in trades]
    assert got["side"].to_list() == [t["side"] for t in trades]
    assert got["units"].to_list() == [t["units"] for t in trades]
    assert got["entry_price"].to_list() == [t["entry_price"] for t in trades]
    assert got["exit_price"].to_list() == [t["exit_price"] for t in trades]
    np.testing.assert_allclose(got["pnl"].to_numpy(), [t["pnl"] for t in trades], rtol=1e-9, atol=1e-15)
    assert got["pnl"].sum() == pytest.approx(result.metrics["total_pnl"], abs=1e-12)
    assert got["symbol"].unique().to_list() == ["EURUSD"]


def test_open_trade_is_marked_when_not_closed_at_end() -> None:
    bid, ask = np.array([1.0, 1.1, 1.2]), np.array([1.01, 1.11, 1.21])
    result = B.backtest_arrays(_ts(3), bid, ask, np.array([0, 1, 1]), close_at_end=False)
    trade = result.trades.row(0, named=True)
    assert trade["exit_ts"] is None and trade["exit_price"] is None
    assert trade["pnl"] == pytest.approx(1.2 - 1.11)  # bought at the ask 1.11, worth the bid 1.2
    assert math.isnan(result.metrics["hit_rate"])  # no closed trade


def test_metrics_match_independent_computations(ticks: pl.DataFrame) -> None:
    positions = B.ma_crossover_positions(((ticks["bid"] + ticks["ask"]) / 2).to_numpy(), 200, 2000)
    result = B.backtest_ticks(ticks, positions, sample_interval=timedelta(minutes=5))
    m = result.metrics
    capital = m["initial_capital"]
    curve = result.equity.group_by_dynamic("ts", every="5m").agg(pl.col("equity").last())["equity"].to_numpy()
    returns = pd.Series(np.concatenate(([capital], curve))).pct_change().dropna().to_numpy()
    per_year = 252 * 24 * 12
    assert m["periods_per_year"] == per_year
    assert m["sharpe"] == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(per_year), rel=1e-9)
    downside = math.sqrt(np.mean(np.where(returns < 0, returns, 0.0) ** 2))
    assert m["sortino"] == pytest.approx(returns.mean() / downside * math.sqrt(per_year), rel=1e-9)
    full = pd.Series(np.concatenate(([capital], result.equity["equity"].to_numpy())))
    assert m["max_drawdown"] == pytest.approx(((full.cummax() - full) / full.cummax()).max(), rel=1e-12)
    assert m["total_return"] == pytest.approx(m["total_pnl"] / capital)
    closed = result.trades.filter(pl.col("exit_ts").is_not_null())
    assert m["hit_rate"] == pytest.approx((closed["pnl"] > 0).mean())
    assert m["trade_count"] == result.trades.height == np.count_nonzero(np.diff(positions, prepend=0)[positions != 0])


def test_bars_fill_at_bid_ask_close_and_fall_back_to_close(ticks: pl.DataFrame) -> None:
    bars = minute_bars(ticks)
    target = B.ma_crossover_positions(bars["close"].to_numpy(), 5, 30)
    with_quotes = B.backtest_bars(bars, target)
    expected = B.backtest_arrays(
        bars["ts"].cast(pl.Int64).to_numpy(), bars["bid_close"].to_numpy(), bars["ask_close"].to_numpy(), target,
        sample_interval=timedelta(minutes=1),
    )
    assert with_quotes.metrics == expected.metrics
    assert with_quotes.metrics["periods_per_year"] == 252 * 24 * 60
    # Vendor bars without quotes trade at close: no spread is paid, so the same signals do better.
    close_only = B.backtest_bars(bars.drop("bid_close", "ask_close"), target)
    at_close = B.backtest_arrays(
        bars["ts"].cast(pl.Int64).to_numpy(), bars["close"].to_numpy(), bars["close"].to_numpy(), target,
        sample_interval=timedelta(minutes=1),
    )
    assert close_only.metrics == at_close.metrics
    assert close_only.metrics["total_pnl"] > with_quotes.metrics["total_pnl"]
    # Null quotes on some rows fall back to close on those rows only.
    holes = bars.with_columns(pl.when(pl.int_range(pl.len()) % 2 == 0).then(None).otherwise(pl.col("bid_close")).alias("bid_close"))
    mixed = B.backtest_bars(holes, target)
    bid_mixed = np.where(np.arange(bars.height) % 2 == 0, bars["close"].to_numpy(), bars["bid_close"].to_numpy())
    assert mixed.metrics == B.backtest_arrays(
        bars["ts"].cast(pl.Int64).to_numpy(), bid_mixed, bars["ask_close"].to_numpy(), target,
        sample_interval=timedelta(minutes=1),
    ).metrics


def _same(a: B.BacktestResult, b: B.BacktestResult) -> bool:
    same_metrics = all(
        (math.isnan(a.metrics[k]) and math.isnan(b.metrics[k])) or a.metrics[k] == b.metrics[k] for k in a.metrics
    )
    return same_metrics and a.equity.equals(b.equity) and a.trades.equals(b.trades)


def test_results_are_bit_identical_for_the_same_input(ticks: pl.DataFrame) -> None:
    rng = np.random.default_rng(3)
    target = np.repeat(rng.choice([-1.0, 0.0, 1.0, 2.0], ticks.height // 50 + 1), 50)[: ticks.height]
    first = B.backtest_ticks(ticks, target, commission_bps=0.2)
    # same values in a differently laid-out copy (strided views, separate chunks)
    doubled = np.repeat(target, 2)[::2]
    rechunked = pl.concat([ticks.head(1000), ticks.slice(1000)], rechunk=False)
    assert _same(first, B.backtest_ticks(rechunked, doubled, commission_bps=0.2))
    assert _same(first, B.backtest_ticks(ticks, target, commission_bps=0.2))


def test_bad_input_is_named(ticks: pl.DataFrame) -> None:
    part = ticks.head(100)
    with pytest.raises(B.BacktestInputError, match=r"positions: expected 100 values .* got shape \(99,\)"):
        B.backtest_ticks(part, np.zeros(99))
    with pytest.raises(B.BacktestInputError, match="one symbol per backtest"):
        B.backtest_ticks(pl.concat([part, part.with_columns(symbol=pl.lit("XAUUSD"))]), np.zeros(200))
    with pytest.raises(B.BacktestInputError, match="ts: not in time order at observation 50"):
        B.backtest_ticks(pl.concat([part.slice(50), part.head(50)]), np.zeros(100))
    broken = part.with_columns(pl.when(pl.int_range(pl.len()) == 42).then(float("nan")).otherwise(pl.col("ask")).alias("ask"))
    with pytest.raises(B.BacktestInputError, match="ask: non-finite value at observation 42"):
        B.backtest_ticks(broken, np.zeros(100))
    with pytest.raises(B.BacktestInputError, match="positions: contains nulls"):
        B.backtest_ticks(part, pl.Series([1.0, None] * 50))


# --- leaderboard over real run summaries ---------------------------------------------------------


def test_leaderboard_ranks_real_runs_and_breaks_ties_deterministically(ticks: pl.DataFrame) -> None:
    from lake_resources.research import heuristics as H
    from lake_resources.research.leaderboard import LeaderboardError, leaderboard

    bars = minute_bars(ticks)
    spec = H.parse_spec({"name": "lb", "version": 1, "kind": "ma_crossover", "params": {}, "grid": {"fast": [3, 5, 10], "slow": [30, 60]}})
    summaries = []
    for run in H.expand_grid(spec):
        positions = H.detect(run, bars).positions["position"]
        summaries.append({"spec_id": run.spec_id, **B.backtest_bars(bars, positions).metrics})
    # a copy under another id ties every metric; a run without a Sharpe must rank last
    summaries.append({**summaries[0], "spec_id": "aaa.v1.tie"})
    summaries.append({**summaries[1], "spec_id": "000.v1.nan", "sharpe": math.nan})
    board = leaderboard(summaries)
    assert board["rank"].to_list() == list(range(1, len(summaries) + 1))
    assert board.columns[:3] == ["rank", "spec_id", "sharpe"] and "max_drawdown" in board.columns
    sharpe = board["sharpe"].to_list()
    assert sharpe[:-1] == sorted(sharpe[:-1], reverse=True) and math.isnan(sharpe[-1])
    tied = board.filter(pl.col("sharpe") == summaries[0]["sharpe"])["spec_id"].to_list()
    assert tied == sorted(["aaa.v1.tie", summaries[0]["spec_id"]])
    shuffled = leaderboard(list(reversed(summaries)))
    assert shuffled.equals(board)  # input order never matters
    by_drawdown = leaderboard(summaries, "max_drawdown")
    assert by_drawdown["max_drawdown"].to_list() == sorted(s["max_drawdown"] for s in summaries)
    with pytest.raises(LeaderboardError, match="pass descending"):
        leaderboard(summaries, "trade_count")
    assert leaderboard(summaries, "trade_count", descending=False)["trade_count"].is_sorted()
    with pytest.raises(LeaderboardError, match="no metric column 'calmar'"):
        leaderboard(summaries, "calmar")
    with pytest.raises(LeaderboardError, match="runs repeated"):
        leaderboard(summaries + summaries[:1])

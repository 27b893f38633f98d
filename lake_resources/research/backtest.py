"""Vectorised backtests of target-position series over bars or ticks.

Execution model (the same for bars and ticks):

- ``target[i]`` is the position (units; -1/0/+1 or any size) wanted after observation ``i``. It must
  be computed from data at or before ``i``; the change ``target[i] - target[i-1]`` fills at
  observation ``i``: buys at the ask, sells at the bid, so every round trip pays the spread. Bars
  use ``ask_close``/``bid_close`` where present (``close`` where those are missing or null).
- Commission: ``commission_per_unit`` per unit traded plus ``commission_bps`` of the traded notional.
- By default the position is flattened at the last observation, so all PnL is realised.
- Equity = capital + cash + position marked at its liquidation price (bid when long, ask when
  short): entering a position shows its spread cost at once.
- ``initial_capital`` defaults to the first mid x the largest absolute target: the capital that
  holds the biggest position without leverage. Returns, turnover and drawdown are relative to it.

Metrics and their conventions:

- ``sharpe`` = mean / sample std (ddof=1) of per-period returns x sqrt(periods_per_year);
  ``sortino`` = mean / downside deviation x sqrt(periods_per_year), downside deviation =
  sqrt(mean(min(r, 0)^2)) over all periods (target 0). Both are NaN when undefined (fewer than two
  periods, or a zero denominator).
- Periods: equity is sampled at the last observation of each ``sample_interval`` bucket (UTC epoch
  aligned; buckets without observations are skipped, as bars are), starting from the initial capital.
  ``periods_per_year`` = :data:`ANNUALISATION_DAYS` 24-hour days / interval unless given; pass it
  for markets that do not trade round the clock.
- ``max_drawdown``: the largest fall from a running peak of equity, as a positive fraction of that peak,
  on every observation. ``hit_rate``: share of closed trades with PnL > 0. ``turnover``: traded notional
  / initial capital. A *trade* is a maximal run of same-sign position (a sign flip closes one trade and
  opens the next at the same fill).

Everything is numpy without per-row Python loops, so the same input gives bit-identical output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import polars as pl

TS_DTYPE = pl.Datetime("ns", "UTC")
NS_PER_DAY = 86_400 * 1_000_000_000
#: Days per year used to annualise (24-hour days: FX and crypto trade round the clock on weekdays+).
ANNUALISATION_DAYS = 252
DEFAULT_TICK_SAMPLE = timedelta(minutes=1)


class BacktestInputError(ValueError):
    """Input that a backtest cannot run on; the message names the column/argument and where."""


@dataclass(frozen=True)
class BacktestResult:
    equity: pl.DataFrame  # ts, equity, position
    trades: pl.DataFrame  # entry_ts, exit_ts, side, units, entry_price, exit_price, pnl
    metrics: dict[str, float]


def _ns(interval: timedelta) -> int:
    return (interval.days * 86_400 + interval.seconds) * 1_000_000_000 + interval.microseconds * 1_000


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_arrays(ts: np.ndarray, bid: np.ndarray, ask: np.ndarray, target: np.ndarray) -> None:
    n = len(ts)
    for name, arr in (("bid", bid), ("ask", ask), ("target", target)):
        if arr.ndim != 1 or len(arr) != n:
            raise BacktestInputError(f"{name}: expected {n} values (one per observation), got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise BacktestInputError(f"{name}: non-finite value at observation {_first_bad(~np.isfinite(arr))}")
    if n == 0:
        raise BacktestInputError("no observations to backtest")
    if n > 1 and (bad := np.diff(ts) < 0).any():
        raise BacktestInputError(f"ts: not in time order at observation {_first_bad(bad) + 1}")


def _sample_returns(ts: np.ndarray, equity: np.ndarray, capital: float, interval_ns: int) -> np.ndarray:
    bucket = ts // interval_ns
    last_in_bucket = np.flatnonzero(np.diff(bucket, append=bucket[-1] + 1))
    sampled = np.concatenate(([capital], equity[last_in_bucket]))
    return np.diff(sampled) / sampled[:-1]


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 and math.isfinite(den) else math.nan


def backtest_arrays(
    ts: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    target: np.ndarray,
    *,
    commission_per_unit: float = 0.0,
    commission_bps: float = 0.0,
    initial_capital: float | None = None,
    close_at_end: bool = True,
    sample_interval: timedelta = DEFAULT_TICK_SAMPLE,
    periods_per_year: float | None = None,
) -> BacktestResult:
    """Backtest ``target`` positions on quotes ``bid``/``ask`` at int64 epoch-ns ``ts`` (see module doc)."""
    ts = np.asarray(ts).astype(np.int64, copy=False)
    bid = np.asarray(bid, dtype=np.float64)
    ask = np.asarray(ask, dtype=np.float64)
    q = np.array(target, dtype=np.float64)  # a copy: the last value may be forced flat
    _check_arrays(ts, bid, ask, q)
    if commission_per_unit < 0 or commission_bps < 0:
        raise BacktestInputError("commission_per_unit and commission_bps must be >= 0")
    interval_ns = _ns(sample_interval)
    if interval_ns <= 0:
        raise BacktestInputError(f"sample_interval must be positive, got {sample_interval}")
    n = len(q)
    if close_at_end:
        q[-1] = 0.0
    mid0 = 0.5 * (bid[0] + ask[0])
    capital = float(initial_capital) if initial_capital is not None else mid0 * max(float(np.abs(q).max()), 1.0)
    if not capital > 0:
        raise BacktestInputError(f"initial_capital must be > 0, got {capital}")

    # Fills happen only where the target changes.
    prev_q = np.concatenate(([0.0], q[:-1]))
    dq = q - prev_q
    fills = np.flatnonzero(dq)
    fill_dq = dq[fills]
    fill_price = np.where(fill_dq > 0, ask[fills], bid[fills])

    def commission(units: np.ndarray, price: np.ndarray) -> np.ndarray:
        return np.abs(units) * (commission_per_unit + price * (commission_bps * 1e-4))

    cash_flow = np.zeros(n)
    cash_flow[fills] = -fill_dq * fill_price - commission(fill_dq, fill_price)
    cash = np.cumsum(cash_flow)
    mark = np.where(q > 0, bid, ask)
    pnl = cash + q * mark
    equity = capital + pnl

    # Trades: runs of one sign. A fill that flips the sign is split into a closing and an opening leg.
    sign = np.sign(q)
    prev_sign = np.sign(prev_q)
    starts = np.flatnonzero((sign != 0) & (sign != prev_sign))
    run_id = np.cumsum((sign != 0) & (sign != prev_sign)) - 1
    fill_prev_q = prev_q[fills]
    closes_prev = (prev_sign[fills] != 0) & (sign[fills] != prev_sign[fills])
    close_units = np.where(closes_prev, -fill_prev_q, 0.0)
    open_units = fill_dq - close_units
    leg_cash_close = -close_units * fill_price - commission(close_units, fill_price)
    leg_cash_open = -open_units * fill_price - commission(open_units, fill_price)
    n_runs = len(starts)
    trade_pnl = np.zeros(n_runs)
    if n_runs:
        # closes_prev implies a position before the fill, so fills[closes_prev] >= 1
        np.add.at(trade_pnl, run_id[fills[closes_prev] - 1], leg_cash_close[closes_prev])
        has_open = open_units != 0
        np.add.at(trade_pnl, run_id[fills][has_open], leg_cash_open[has_open])
    sign_changes = np.flatnonzero(sign != prev_sign)
    exit_pos = np.searchsorted(sign_changes, starts, side="right")
    is_closed = exit_pos < len(sign_changes)
    exit_idx = np.where(is_closed, sign_changes[np.minimum(exit_pos, len(sign_changes) - 1)], n - 1)
    if n_runs and not is_closed[-1]:
        trade_pnl[-1] += q[-1] * mark[-1]  # an open trade is marked at its liquidation price
    price_at_fill = np.zeros(n)
    price_at_fill[fills] = fill_price
    units = np.maximum.reduceat(np.abs(q), starts) if n_runs else np.zeros(0)

    ts_series = pl.Series("ts", ts).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    trades = pl.DataFrame(
        {
            "entry_ts": ts_series.gather(starts),
            "exit_ts": ts_series.gather(exit_idx),
            "side": sign[starts].astype(np.int8),
            "units": units,
            "entry_price": price_at_fill[starts],
            "exit_price": price_at_fill[exit_idx],
            "pnl": trade_pnl,
        }
    ).with_columns(
        pl.when(pl.Series(is_closed)).then(pl.col(c)).otherwise(None).alias(c) for c in ("exit_ts", "exit_price")
    )
    equity_frame = pl.DataFrame({"ts": ts_series, "equity": equity, "position": q})

    ppy = periods_per_year if periods_per_year is not None else ANNUALISATION_DAYS * NS_PER_DAY / interval_ns
    returns = _sample_returns(ts, equity, capital, interval_ns)
    if len(returns) >= 2:
        mean, std = float(returns.mean()), float(returns.std(ddof=1))
        downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
        sharpe, sortino = _ratio(mean, std) * math.sqrt(ppy), _ratio(mean, downside) * math.sqrt(ppy)
    else:
        sharpe = sortino = math.nan
    curve = np.concatenate(([capital], equity))
    drawdown = 1.0 - curve / np.maximum.accumulate(curve)
    closed_pnl = trade_pnl[is_closed]
    metrics = {
        "total_pnl": float(pnl[-1]),
        "total_return": float(pnl[-1] / capital),
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": float(drawdown.max()),
        "hit_rate": float((closed_pnl > 0).mean()) if len(closed_pnl) else math.nan,
        "trade_count": float(n_runs),
        "turnover": float(np.abs(fill_dq * fill_price).sum() / capital),
        "commission": float(commission(fill_dq, fill_price).sum()),
        "initial_capital": capital,
        "periods_per_year": float(ppy),
    }
    return BacktestResult(equity=equity_frame, trades=trades, metrics=metrics)


def _positions_array(positions: np.ndarray | pl.Series | Sequence[float], n: int) -> np.ndarray:
    arr = positions.to_numpy() if isinstance(positions, pl.Series) else np.asarray(positions)
    if arr.shape != (n,):
        raise BacktestInputError(f"positions: expected {n} values (one per row), got shape {arr.shape}")
    if arr.dtype == object or (isinstance(positions, pl.Series) and positions.null_count()):
        raise BacktestInputError("positions: contains nulls")
    return arr.astype(np.float64)


def _single_symbol(frame: pl.DataFrame, what: str) -> str | None:
    if "symbol" not in frame.columns:
        return None
    symbols = frame["symbol"].unique().to_list()
    if len(symbols) > 1:
        raise BacktestInputError(f"{what}: one symbol per backtest, got {sorted(map(str, symbols))}")
    return symbols[0] if symbols else None


def _ts_ns(frame: pl.DataFrame, what: str) -> np.ndarray:
    if "ts" not in frame.columns:
        raise BacktestInputError(f"{what}: missing column ts")
    if not isinstance(frame.schema["ts"], pl.Datetime):
        raise BacktestInputError(f"{what}: column ts must be a Datetime, got {frame.schema['ts']}")
    return frame["ts"].dt.cast_time_unit("ns").cast(pl.Int64).to_numpy()


def _with_symbol(result: BacktestResult, symbol: str | None) -> BacktestResult:
    if symbol is None:
        return result
    return BacktestResult(
        equity=result.equity,
        trades=result.trades.with_columns(pl.lit(symbol).alias("symbol")),
        metrics=result.metrics,
    )


def backtest_bars(
    bars: pl.DataFrame,
    positions: np.ndarray | pl.Series | Sequence[float],
    *,
    sample_interval: timedelta | None = None,
    **options,
) -> BacktestResult:
    """Backtest one symbol's bars; fills at ``ask_close``/``bid_close`` (``close`` where absent/null).

    ``sample_interval`` defaults to the median bar spacing (so 1-minute bars give per-minute returns).
    Other options as :func:`backtest_arrays`.
    """
    symbol = _single_symbol(bars, "bars")
    if "close" not in bars.columns:
        raise BacktestInputError("bars: missing column close")
    ts = _ts_ns(bars, "bars")
    close = pl.col("close").cast(pl.Float64)
    quotes = bars.select(
        (pl.col("bid_close").cast(pl.Float64).fill_null(close) if "bid_close" in bars.columns else close).alias("bid"),
        (pl.col("ask_close").cast(pl.Float64).fill_null(close) if "ask_close" in bars.columns else close).alias("ask"),
    )
    if sample_interval is None:
        spacing = np.diff(ts)
        spacing = spacing[spacing > 0]
        median_ns = float(np.median(spacing)) if len(spacing) else float(NS_PER_DAY)
        sample_interval = timedelta(microseconds=median_ns / 1_000)
    result = backtest_arrays(
        ts,
        quotes["bid"].to_numpy(),
        quotes["ask"].to_numpy(),
        _positions_array(positions, bars.height),
        sample_interval=sample_interval,
        **options,
    )
    return _with_symbol(result, symbol)


def backtest_ticks(
    ticks: pl.DataFrame,
    positions: np.ndarray | pl.Series | Sequence[float],
    **options,
) -> BacktestResult:
    """Backtest one symbol's ticks (``ts, bid, ask``); options as :func:`backtest_arrays`."""
    symbol = _single_symbol(ticks, "ticks")
    for column in ("bid", "ask"):
        if column not in ticks.columns:
            raise BacktestInputError(f"ticks: missing column {column}")
    result = backtest_arrays(
        _ts_ns(ticks, "ticks"),
        ticks["bid"].cast(pl.Float64).to_numpy(),
        ticks["ask"].cast(pl.Float64).to_numpy(),
        _positions_array(positions, ticks.height),
        **options,
    )
    return _with_symbol(result, symbol)


# --- MA crossover: the benchmark pair (vectorised vs plain loop) ---------------------------------
#
# Both compute the same floating-point operations in the same order, so their PnL is bit-identical:
# moving averages come from sequential prefix sums (np.cumsum accumulates left to right, as the loop
# does), a mean is (S[i+1] - S[i+1-w]) / w in both, and the PnL is the left-to-right sum of the fill
# cash flows (np.cumsum again, not np.sum's pairwise order). Position: +1 while the fast MA of mid is
# above the slow one, -1 while below, 0 when equal or before ``slow`` ticks exist; flat at the last tick.


def _check_ma(fast: int, slow: int) -> None:
    if not (isinstance(fast, int) and isinstance(slow, int) and 1 <= fast < slow):
        raise BacktestInputError(f"need integers 1 <= fast < slow, got fast={fast!r}, slow={slow!r}")


_BLOCK = 1 << 16  # observations per block: keeps the MA temporaries in cache, no 80 MB temporaries


def _prefix_sums(values: np.ndarray) -> np.ndarray:
    """S with S[0] = 0, S[i+1] = S[i] + values[i], accumulated left to right (as the loop does)."""
    prefix = np.empty(len(values) + 1)
    prefix[0] = 0.0
    np.cumsum(values, out=prefix[1:])
    if not np.isfinite(prefix[-1]):  # any NaN/inf poisons the running sum: one check for the whole series
        raise BacktestInputError(f"prices: non-finite value at observation {_first_bad(~np.isfinite(values))}")
    return prefix


def _crossover_from_prefix(prefix: np.ndarray, fast: int, slow: int) -> np.ndarray:
    n = len(prefix) - 1
    positions = np.zeros(n, dtype=np.int8)
    fast_buf, slow_buf, below_buf = np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK, dtype=bool)
    for start in range(slow - 1, n, _BLOCK):  # a loop over blocks, not rows
        stop = min(start + _BLOCK, n)
        size = stop - start
        end = prefix[start + 1 : stop + 1]  # S[i+1] for i in the block
        fast_ma, slow_ma, below = fast_buf[:size], slow_buf[:size], below_buf[:size]
        np.subtract(end, prefix[start + 1 - fast : stop + 1 - fast], out=fast_ma)
        fast_ma /= fast
        np.subtract(end, prefix[start + 1 - slow : stop + 1 - slow], out=slow_ma)
        slow_ma /= slow
        out = positions[start:stop]
        np.greater(fast_ma, slow_ma, out=out, casting="unsafe")
        out -= np.less(fast_ma, slow_ma, out=below).view(np.int8)
    return positions


def ma_crossover_positions(prices: np.ndarray, fast: int, slow: int) -> np.ndarray:
    """+1/-1/0 (int8) per observation: sign of fast MA - slow MA of ``prices`` (0 until ``slow`` exist)."""
    _check_ma(fast, slow)
    prices = np.asarray(prices, dtype=np.float64)
    if prices.ndim != 1:
        raise BacktestInputError(f"prices must be 1-d, got shape {prices.shape}")
    return _crossover_from_prefix(_prefix_sums(prices), fast, slow)


def ma_crossover_backtest_ticks(bid: np.ndarray, ask: np.ndarray, fast: int, slow: int) -> float:
    """PnL (price units, 1 unit traded) of the MA crossover on tick mids; vectorised."""
    _check_ma(fast, slow)
    bid = np.asarray(bid, dtype=np.float64)
    ask = np.asarray(ask, dtype=np.float64)
    if bid.shape != ask.shape or bid.ndim != 1:
        raise BacktestInputError(f"bid and ask must be 1-d of one length, got {bid.shape} and {ask.shape}")
    if len(bid) == 0:
        return 0.0
    prefix = np.empty(len(bid) + 1)
    prefix[0] = 0.0
    mid = prefix[1:]
    np.add(bid, ask, out=mid)
    mid *= 0.5
    np.cumsum(mid, out=mid)  # in place: the prefix sums of the mids
    if not np.isfinite(prefix[-1]):
        bad = ~(np.isfinite(bid) & np.isfinite(ask))
        raise BacktestInputError(f"prices: non-finite value at observation {_first_bad(bad)}")
    positions = _crossover_from_prefix(prefix, fast, slow)
    positions[-1] = 0
    changes = np.flatnonzero(np.diff(positions, prepend=np.int8(0)))
    step = positions[changes] - np.concatenate(([0], positions[changes[:-1]])).astype(np.int8)
    cash = -step * np.where(step > 0, ask[changes], bid[changes])
    return float(np.cumsum(cash)[-1]) if len(cash) else 0.0


def ma_crossover_backtest_loop(bid: Sequence[float], ask: Sequence[float], fast: int, slow: int) -> float:
    """The reference: the same backtest as :func:`ma_crossover_backtest_ticks` as a plain Python loop."""
    _check_ma(fast, slow)
    bids = [float(b) for b in bid]
    asks = [float(a) for a in ask]
    if len(bids) != len(asks):
        raise BacktestInputError(f"bid and ask must be of one length, got {len(bids)} and {len(asks)}")
    n = len(bids)
    prefix = [0.0]
    running = 0.0
    position = 0
    pnl = 0.0
    for i in range(n):
        running += (bids[i] + asks[i]) * 0.5
        prefix.append(running)
        target = 0
        if i >= slow - 1 and i != n - 1:
            fast_ma = (prefix[i + 1] - prefix[i + 1 - fast]) / fast
            slow_ma = (prefix[i + 1] - prefix[i + 1 - slow]) / slow
            target = 1 if fast_ma > slow_ma else (-1 if fast_ma < slow_ma else 0)
        if target != position:
            step = target - position
            pnl += -step * (asks[i] if step > 0 else bids[i])
            position = target
    if not math.isfinite(running):
        raise BacktestInputError("prices: non-finite values")
    return pnl

"""MA-crossover backtest over ticks: ours (vectorised) against the same backtest as a plain Python
loop, on the same bid/ask series; the two PnLs must be identical (bit for bit) in the run."""

from __future__ import annotations

import numpy as np

from lake_resources.bench.core import Figure, Scaling, log, median_times, speedup
from lake_resources.bench.workspace import Workspace

IDS = ("backtest_vs_loop",)
FAST, SLOW = 50, 200  # moving-average windows, in ticks


def _backtest_functions():
    try:
        from lake_resources.research.backtest import ma_crossover_backtest_loop, ma_crossover_backtest_ticks
    except ImportError as exc:  # the research module is built separately; say so instead of failing the run
        raise RuntimeError(f"lake_resources.research.backtest has no MA-crossover pair yet: {exc}") from None
    return ma_crossover_backtest_ticks, ma_crossover_backtest_loop


def run(ws: Workspace, wanted: set[str]) -> list[Figure]:
    if "backtest_vs_loop" not in wanted:
        return []
    vectorised, loop = _backtest_functions()
    cfg = ws.config
    ticks = ws.ticks(ws.days[0])
    bid, ask = ticks["bid"].to_numpy(), ticks["ask"].to_numpy()
    bid_list, ask_list = bid.tolist(), ask.tolist()  # the loop's native input, made before timing
    n = len(bid)
    ours_pnl, loop_pnl = vectorised(bid, ask, FAST, SLOW), loop(bid_list, ask_list, FAST, SLOW)
    if ours_pnl != loop_pnl:
        raise AssertionError(f"MA-crossover PnL differs: vectorised {ours_pnl!r}, plain loop {loop_pnl!r}")
    log(f"MA-crossover backtest: {n:,} ticks, {cfg.repeats} rounds (PnL {ours_pnl:.6g} on both sides)")
    t = median_times(
        {"ours": lambda: vectorised(bid, ask, FAST, SLOW), "loop": lambda: loop(bid_list, ask_list, FAST, SLOW)},
        cfg.repeats, warmup=cfg.warmup, budget=cfg.budget_seconds,
    )
    fig = speedup("backtest_vs_loop", f"MA({FAST}/{SLOW}) crossover backtest over {n / 1e6:.2f} M ticks",
                  "plain Python loop, identical PnL asserted", n, t["ours"], t["loop"], target=20.0)
    if cfg.scaling:
        every_bid = np.concatenate([ws.ticks(d)["bid"].to_numpy() for d in ws.days])
        every_ask = np.concatenate([ws.ticks(d)["ask"].to_numpy() for d in ws.days])
        log(f"backtest scaling: 1 vs {len(ws.days)} days")
        ts = median_times(
            {"one": lambda: vectorised(bid, ask, FAST, SLOW), "all": lambda: vectorised(every_bid, every_ask, FAST, SLOW)},
            cfg.repeats, warmup=cfg.warmup, budget=cfg.budget_seconds,
        )
        fig.scaling = Scaling("ns/tick", ts["one"] / n * 1e9, ts["all"] / len(every_bid) * 1e9, cfg.days, n, len(every_bid))
    return [fig]

"""Minute-bar figures: ours (``minute_bars`` / ``minute_bars_from_parquet``) against pandas
``resample``, a hand-written numpy ``reduceat`` floor and DuckDB ``time_bucket`` over the same files.

Every baseline computes the same bars (OHLC on mid, bid and ask, volume sums, tick counts, mean
spread, only minutes with ticks) and is checked against ours in the run: OHLC and tick counts
exactly, sums and means to float rounding.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import polars as pl

from lake_resources.bench.core import Figure, Scaling, log, median_times, speedup
from lake_resources.bench.workspace import Workspace
from lake_resources.transforms.bars import minute_bars, minute_bars_from_parquet

IDS = ("bars_vs_pandas", "bars_vs_numpy", "bars_parquet_vs_duckdb")
_NS_PER_MINUTE = 60_000_000_000
_SIDES = ("mid", "bid", "ask")
_EXACT = ("open", "high", "low", "close", "bid_open", "bid_high", "bid_low", "bid_close",
          "ask_open", "ask_high", "ask_low", "ask_close", "tick_count")
_CLOSE = ("bid_volume", "ask_volume", "volume", "spread_mean")


# --- baselines ------------------------------------------------------------------------------------
def pandas_frame(ticks: pl.DataFrame) -> pd.DataFrame:
    """The ticks as pandas holds them natively (indexed by time; volumes already float64)."""
    frame = ticks.select("ts", "bid", "ask", "mid", "spread", pl.col("bid_volume", "ask_volume").cast(pl.Float64))
    return frame.to_pandas().set_index("ts")


def pandas_minute_bars(frame: pd.DataFrame) -> pd.DataFrame:
    resampled = frame.resample("1min")
    ohlc = resampled[list(_SIDES)].ohlc()
    ohlc.columns = [f"{'' if side == 'mid' else side + '_'}{stat}" for side, stat in ohlc.columns]
    sums = resampled[["bid_volume", "ask_volume"]].sum()
    out = pd.concat([ohlc, sums], axis=1)
    out["volume"] = out["bid_volume"] + out["ask_volume"]
    out["tick_count"] = resampled.size()
    out["spread_mean"] = resampled["spread"].mean()
    return out[out["tick_count"] > 0]


def numpy_arrays(ticks: pl.DataFrame) -> dict[str, np.ndarray]:
    arrays = {c: ticks[c].to_numpy() for c in ("bid", "ask", "mid", "spread")}
    arrays["ts"] = ticks["ts"].dt.epoch("ns").to_numpy()
    arrays["bid_volume"] = ticks["bid_volume"].cast(pl.Float64).to_numpy()
    arrays["ask_volume"] = ticks["ask_volume"].cast(pl.Float64).to_numpy()
    return arrays


def numpy_minute_bars(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The floor: one pass of ``ufunc.reduceat`` per aggregate over the runs of equal minutes."""
    minute = a["ts"] // _NS_PER_MINUTE
    starts = np.flatnonzero(np.diff(minute, prepend=minute[0] - 1))
    last = np.append(starts[1:], len(minute)) - 1
    out: dict[str, np.ndarray] = {"ts": minute[starts] * _NS_PER_MINUTE}
    for side in _SIDES:
        prefix = "" if side == "mid" else f"{side}_"
        values = a[side]
        out[f"{prefix}open"] = values[starts]
        out[f"{prefix}high"] = np.maximum.reduceat(values, starts)
        out[f"{prefix}low"] = np.minimum.reduceat(values, starts)
        out[f"{prefix}close"] = values[last]
    out["bid_volume"] = np.add.reduceat(a["bid_volume"], starts)
    out["ask_volume"] = np.add.reduceat(a["ask_volume"], starts)
    out["volume"] = out["bid_volume"] + out["ask_volume"]
    out["tick_count"] = last - starts + 1
    out["spread_mean"] = np.add.reduceat(a["spread"], starts) / out["tick_count"]
    return out


def duckdb_query(files: list[str], symbol: str) -> tuple[str, list]:
    # Files are sorted by ts and a minute never spans two daily files, so the row number in the file
    # orders the ticks of a minute exactly as they arrived (ticks sharing a millisecond included).
    sides = []
    for side in _SIDES:
        prefix = "" if side == "mid" else f"{side}_"
        sides.append(
            f"arg_min({side}, file_row_number) AS {prefix}open, max({side}) AS {prefix}high, "
            f"min({side}) AS {prefix}low, arg_max({side}, file_row_number) AS {prefix}close"
        )
    listing = ", ".join(f"'{f}'" for f in files)
    query = (
        f"SELECT symbol, time_bucket(INTERVAL 1 MINUTE, ts) AS ts, {', '.join(sides)}, "
        "sum(bid_volume::DOUBLE) AS bid_volume, sum(ask_volume::DOUBLE) AS ask_volume, "
        "sum(bid_volume::DOUBLE) + sum(ask_volume::DOUBLE) AS volume, count(*) AS tick_count, "
        "avg(spread) AS spread_mean "
        f"FROM read_parquet([{listing}], file_row_number = true) WHERE symbol = ? "
        "GROUP BY ALL ORDER BY symbol, ts"
    )
    return query, [symbol]


# --- equality -------------------------------------------------------------------------------------
def check_same_bars(ours: pl.DataFrame, other: dict[str, np.ndarray], what: str) -> None:
    if ours.height != len(other["ts"]):
        raise AssertionError(f"minute bars: ours has {ours.height} bars, {what} has {len(other['ts'])}")
    ts = ours["ts"].dt.epoch("ns").to_numpy()
    if not np.array_equal(ts, np.asarray(other["ts"], dtype=np.int64)):
        raise AssertionError(f"minute bars: bar times differ between ours and {what}")
    for column in _EXACT:
        if not np.array_equal(ours[column].to_numpy(), np.asarray(other[column])):
            raise AssertionError(f"minute bars: {column} differs between ours and {what}")
    for column in _CLOSE:
        if not np.allclose(ours[column].to_numpy(), np.asarray(other[column], dtype=np.float64), rtol=1e-9, atol=1e-9):
            raise AssertionError(f"minute bars: {column} differs beyond rounding between ours and {what}")


def _pandas_as_arrays(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {c: bars[c].to_numpy() for c in bars.columns}
    out["ts"] = bars.index.as_unit("ns").asi8
    return out


def _polars_as_arrays(bars: pl.DataFrame) -> dict[str, np.ndarray]:
    out = {c: bars[c].to_numpy() for c in bars.columns if c not in ("ts", "symbol")}
    out["ts"] = bars["ts"].dt.epoch("ns").to_numpy()
    return out


# --- the figures ----------------------------------------------------------------------------------
def run(ws: Workspace, wanted: set[str]) -> list[Figure]:
    cfg = ws.config
    day = ws.days[0]
    ticks = ws.ticks(day)
    n = ticks.height
    figures: list[Figure] = []
    what = f"{n / 1e6:.2f} M ticks"

    if wanted & {"bars_vs_pandas", "bars_vs_numpy"}:
        ours = minute_bars(ticks)
        fns = {"ours": lambda: minute_bars(ticks)}
        if "bars_vs_pandas" in wanted:
            frame = pandas_frame(ticks)
            check_same_bars(ours, _pandas_as_arrays(pandas_minute_bars(frame)), "pandas resample")
            fns["pandas"] = lambda: pandas_minute_bars(frame)
        if "bars_vs_numpy" in wanted:
            arrays = numpy_arrays(ticks)
            check_same_bars(ours, numpy_minute_bars(arrays), "numpy reduceat")
            fns["numpy"] = lambda: numpy_minute_bars(arrays)
        log(f"minute bars in memory: {n:,} ticks, {cfg.repeats} rounds")
        t = median_times(fns, cfg.repeats, warmup=cfg.warmup, budget=cfg.budget_seconds)
        if "bars_vs_pandas" in wanted:
            fig = speedup("bars_vs_pandas", f"minute bars in memory ({what})", "pandas `resample`", n, t["ours"], t["pandas"],
                          target=2.0)
            if cfg.scaling:
                fig.scaling = _scaling(ws, lambda days: pl.concat([ws.ticks(d) for d in days], rechunk=True), minute_bars,
                                       "in memory")
            figures.append(fig)
        if "bars_vs_numpy" in wanted:
            figures.append(speedup("bars_vs_numpy", f"minute bars in memory ({what})", "numpy `reduceat` floor, 1 core",
                                   n, t["ours"], t["numpy"], target=0.5))

    if "bars_parquet_vs_duckdb" in wanted:
        files = ws.tick_files([day])
        symbol = ws.symbol
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        query, params = duckdb_query(files, symbol)
        try:
            ours = minute_bars_from_parquet(files, symbol=symbol)
            check_same_bars(ours, _polars_as_arrays(con.execute(query, params).pl()), "DuckDB time_bucket")
            log(f"minute bars from Parquet: {n:,} ticks, {cfg.repeats} rounds")
            t = median_times(
                {"ours": lambda: minute_bars_from_parquet(files, symbol=symbol),
                 "duckdb": lambda: con.execute(query, params).pl()},
                cfg.repeats, warmup=cfg.warmup, budget=cfg.budget_seconds,
            )
        finally:
            con.close()
        fig = speedup("bars_parquet_vs_duckdb", f"minute bars from Parquet ({what}, 1 file)",
                      "DuckDB `time_bucket` over the same file", n, t["ours"], t["duckdb"], target=1.0)
        if cfg.scaling:
            fig.scaling = _scaling(ws, ws.tick_files, lambda files: minute_bars_from_parquet(files, symbol=symbol), "Parquet")
        figures.append(fig)
    return figures


def _scaling(ws: Workspace, prepare, build, label: str) -> Scaling:
    """Ours on the first day and on every day; ``prepare`` (untimed) makes the input from the days."""
    first = ws.days[:1]
    log(f"minute bars ({label}) scaling: 1 vs {len(ws.days)} days")
    one, every = prepare(first), prepare(ws.days)
    t = median_times({"one": lambda: build(one), "all": lambda: build(every)}, ws.config.repeats,  # noqa: F821 - called before the del
                     warmup=ws.config.warmup, budget=ws.config.budget_seconds)
    del one, every
    n1, nn = ws.tick_count(first), ws.tick_count(ws.days)
    return Scaling("ns/tick", t["one"] / n1 * 1e9, t["all"] / nn * 1e9, ws.config.days, n1, nn)

"""Point-in-time correct features over bars, declared in one registry.

Every feature is a :class:`FeatureDef`: output columns, a builder returning polars expressions over
one symbol's bars in time order, and its *lookback*: how many bars **before** ``t`` the value at ``t``
needs. Adding a feature is one ``_register(...)`` call below.

Point-in-time rules, which the tests hold every feature to:

- a value at ``t`` uses bars at or before ``t`` only (rolling windows end at ``t``; nothing is
  shifted backwards, nothing is centred);
- a value is null until its full lookback exists, so a feature never depends on where a series
  happens to start. That is why the exponential averages (RSI, MACD) are *truncated* EMAs: the EMA
  weights ``(1 - alpha)^k`` over the window that holds all but :data:`EMA_TAIL_WEIGHT` of the total
  weight, renormalised. They differ from an infinite EMA by at most that weight share, and they make
  ``compute_features(day2, tail_of_day1)`` equal to computing both days at once.

Windows count bars, not clock time: bars exist only for intervals that had ticks.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

TS_DTYPE = pl.Datetime("ns", "UTC")
#: Weight share an EMA window may leave out (the truncated tail of the exponential weights).
EMA_TAIL_WEIGHT = 1e-6
#: Columns of the bars contract the features read.
REQUIRED_COLUMNS = ("ts", "symbol", "close", "volume", "spread_mean")


class FeatureInputError(ValueError):
    """Bars handed to the feature store break the contract; the message names what and where."""


@dataclass(frozen=True)
class FeatureDef:
    name: str
    columns: tuple[str, ...]
    #: Bars before ``t`` that a value at ``t`` needs (0 = only the bar at ``t``).
    lookback: int
    #: Bump when the definition changes: it feeds :data:`FEATURE_SET_VERSION`.
    version: int
    build: Callable[[], list[pl.Expr]]
    params: dict = field(default_factory=dict)
    description: str = ""


FEATURES: dict[str, FeatureDef] = {}


def _register(feature: FeatureDef) -> None:
    if feature.name in FEATURES:
        raise ValueError(f"feature {feature.name!r} registered twice")
    taken = {c for f in FEATURES.values() for c in f.columns}
    if clash := taken.intersection(feature.columns):
        raise ValueError(f"feature {feature.name!r} reuses output columns {sorted(clash)}")
    FEATURES[feature.name] = feature


# --- window helpers (all windows end at t) -----------------------------------------------------


def ema_window(alpha: float) -> int:
    """Bars an EMA with smoothing ``alpha`` needs to hold all but ``EMA_TAIL_WEIGHT`` of its weight."""
    return math.ceil(math.log(EMA_TAIL_WEIGHT) / math.log(1.0 - alpha))


def _span_alpha(span: int) -> float:
    return 2.0 / (span + 1.0)


def _full_window(expr: pl.Expr, window: int) -> pl.Expr:
    """True where the ``window`` values ending at t are all present."""
    return expr.is_not_null().cast(pl.Int32).rolling_sum(window, min_samples=1) == window


def _window_stat(expr: pl.Expr, window: int, stat: str, ddof: int = 0) -> pl.Expr:
    """Mean or std of the ``window`` values ending at t, each window computed on its own.

    polars' unweighted rolling kernels update running sums, so their last bits depend on where a
    series starts (a day computed with a history tail would differ from a full recompute at 1e-16,
    %b at 1e-11). numpy over a sliding-window view reduces every window alone, two-pass for the std:
    the same window always gives the same bits. A window with a null is null.
    """

    def apply(series: pl.Series) -> pl.Series:
        values = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
        out = np.full(len(values), np.nan)
        if len(values) >= window:
            windows = sliding_window_view(values, window)
            out[window - 1 :] = windows.mean(axis=1) if stat == "mean" else windows.std(axis=1, ddof=ddof)
        return pl.Series(series.name, out).fill_nan(None)

    return expr.map_batches(apply, return_dtype=pl.Float64)


def _rolling_mean(expr: pl.Expr, window: int) -> pl.Expr:
    return _window_stat(expr, window, "mean")


def _rolling_std(expr: pl.Expr, window: int, ddof: int) -> pl.Expr:
    return _window_stat(expr, window, "std", ddof)


def _truncated_ema(expr: pl.Expr, alpha: float) -> pl.Expr:
    window = ema_window(alpha)
    # polars normalises weighted means by the weight sum; the last weight applies to the newest bar.
    weights = [(1.0 - alpha) ** (window - 1 - i) for i in range(window)]
    # Weighted rolling kernels refuse nulls (they panic), so nulls are filled and then masked.
    value = expr.fill_null(0.0).rolling_mean(window, weights=weights)
    return pl.when(_full_window(expr, window)).then(value).otherwise(None)


def _log_return() -> pl.Expr:
    return (pl.col("close") / pl.col("close").shift(1)).log()


# --- the registry ------------------------------------------------------------------------------

VOL_WINDOW = 20
RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_WINDOW, BB_STDS = 20, 2.0
VOLUME_WINDOW = 20
SPREAD_WINDOW = 20

_register(
    FeatureDef(
        name="returns",
        columns=("log_return",),
        lookback=1,
        version=1,
        build=lambda: [_log_return().alias("log_return")],
        description="log(close_t / close_{t-1}) on mid closes",
    )
)

_register(
    FeatureDef(
        name="volatility",
        columns=(f"volatility_{VOL_WINDOW}",),
        lookback=VOL_WINDOW,  # VOL_WINDOW returns, each needing the close before it
        version=1,
        params={"window": VOL_WINDOW, "ddof": 1},
        build=lambda: [_rolling_std(_log_return(), VOL_WINDOW, ddof=1).alias(f"volatility_{VOL_WINDOW}")],
        description="sample std of the last 20 log returns (per bar, not annualised)",
    )
)


def _rsi() -> list[pl.Expr]:
    change = pl.col("close").diff()
    alpha = 1.0 / RSI_PERIOD  # Wilder's smoothing
    avg_gain = _truncated_ema(change.clip(lower_bound=0.0), alpha)
    avg_loss = _truncated_ema((-change).clip(lower_bound=0.0), alpha)
    total = avg_gain + avg_loss
    # 100 * gain / (gain + loss) == 100 - 100 / (1 + RS); a flat window reads 50.
    rsi = pl.when(total > 0).then(100.0 * avg_gain / total).when(total.is_not_null()).then(50.0)
    return [rsi.otherwise(None).alias(f"rsi_{RSI_PERIOD}")]


_register(
    FeatureDef(
        name="rsi",
        columns=(f"rsi_{RSI_PERIOD}",),
        lookback=ema_window(1.0 / RSI_PERIOD),  # window of close changes, each needing one earlier close
        version=1,
        params={"period": RSI_PERIOD, "ema_tail_weight": EMA_TAIL_WEIGHT},
        build=_rsi,
        description="Wilder RSI(14) with truncated EMA smoothing of gains and losses",
    )
)


def _macd_line() -> pl.Expr:
    close = pl.col("close")
    return _truncated_ema(close, _span_alpha(MACD_FAST)) - _truncated_ema(close, _span_alpha(MACD_SLOW))


_MACD_PARAMS = {"fast": MACD_FAST, "slow": MACD_SLOW, "signal": MACD_SIGNAL, "ema_tail_weight": EMA_TAIL_WEIGHT}
_MACD_LOOKBACK = ema_window(_span_alpha(MACD_SLOW)) - 1

_register(
    FeatureDef(
        name="macd",
        columns=("macd",),
        lookback=_MACD_LOOKBACK,
        version=1,
        params=_MACD_PARAMS,
        build=lambda: [_macd_line().alias("macd")],
        description="EMA12 - EMA26 of close (truncated EMAs)",
    )
)


def _macd_signal() -> list[pl.Expr]:
    macd = _macd_line()
    signal = _truncated_ema(macd, _span_alpha(MACD_SIGNAL))
    return [signal.alias("macd_signal"), (macd - signal).alias("macd_hist")]


_register(
    FeatureDef(
        name="macd_signal",
        columns=("macd_signal", "macd_hist"),
        # the signal EMA runs over MACD values, each of which needs its own lookback
        lookback=_MACD_LOOKBACK + ema_window(_span_alpha(MACD_SIGNAL)) - 1,
        version=1,
        params=_MACD_PARAMS,
        build=_macd_signal,
        description="EMA9 of MACD (signal line) and MACD - signal (histogram)",
    )
)


def _bollinger() -> list[pl.Expr]:
    close = pl.col("close")
    mid = _rolling_mean(close, BB_WINDOW)
    # Bollinger's own convention: the population std (ddof=0) of the window.
    std = _rolling_std(close, BB_WINDOW, ddof=0)
    upper, lower = mid + BB_STDS * std, mid - BB_STDS * std
    width = upper - lower
    pct_b = pl.when(width > 0).then((close - lower) / width).otherwise(0.5)  # flat window: at the mid
    return [
        mid.alias("bb_mid"),
        upper.alias("bb_upper"),
        lower.alias("bb_lower"),
        pl.when(mid.is_not_null()).then(pct_b).otherwise(None).alias("bb_pct_b"),
    ]


_register(
    FeatureDef(
        name="bollinger",
        columns=("bb_mid", "bb_upper", "bb_lower", "bb_pct_b"),
        lookback=BB_WINDOW - 1,
        version=1,
        params={"window": BB_WINDOW, "stds": BB_STDS, "ddof": 0},
        build=_bollinger,
        description="20-bar Bollinger bands at 2 population std; %b = (close - lower) / (upper - lower)",
    )
)

_register(
    FeatureDef(
        name="volume_ratio",
        columns=(f"volume_ratio_{VOLUME_WINDOW}",),
        lookback=VOLUME_WINDOW - 1,
        version=1,
        params={"window": VOLUME_WINDOW},
        build=lambda: [
            (pl.col("volume") / _rolling_mean(pl.col("volume"), VOLUME_WINDOW)).alias(f"volume_ratio_{VOLUME_WINDOW}")
        ],
        description="volume / mean volume of the last 20 bars (including this one)",
    )
)


def _spread() -> list[pl.Expr]:
    spread = pl.col("spread_mean")
    mean = _rolling_mean(spread, SPREAD_WINDOW)
    std = _rolling_std(spread, SPREAD_WINDOW, ddof=1)
    # A constant spread (std 0) sits exactly at its mean: z = 0.
    z = pl.when(std > 0).then((spread - mean) / std).when(std.is_not_null()).then(0.0).otherwise(None)
    return [mean.alias(f"spread_mean_{SPREAD_WINDOW}"), z.alias(f"spread_z_{SPREAD_WINDOW}")]


_register(
    FeatureDef(
        name="spread",
        columns=(f"spread_mean_{SPREAD_WINDOW}", f"spread_z_{SPREAD_WINDOW}"),
        lookback=SPREAD_WINDOW - 1,
        version=1,
        params={"window": SPREAD_WINDOW, "ddof": 1},
        build=_spread,
        description="rolling mean of the bars' mean spread and its z-score over 20 bars",
    )
)


def _feature_set_version() -> str:
    table = sorted(
        (f.name, f.version, f.lookback, list(f.columns), json.dumps(f.params, sort_keys=True))
        for f in FEATURES.values()
    )
    digest = hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()
    return f"fs-{digest[:12]}"


#: Changes whenever a definition (version, lookback, columns, params) changes: a Dagster code_version.
FEATURE_SET_VERSION = _feature_set_version()


def feature_columns() -> list[str]:
    return [c for f in FEATURES.values() for c in f.columns]


def max_lookback() -> int:
    """Bars of history before a day that make its features exact (the size of ``history_tail``)."""
    return max(f.lookback for f in FEATURES.values())


# --- computing ---------------------------------------------------------------------------------


def _checked(frame: pl.DataFrame, what: str) -> pl.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise FeatureInputError(f"{what}: missing bars column(s) {missing}")
    if frame.schema["ts"] != TS_DTYPE:
        raise FeatureInputError(f"{what}: column ts must be {TS_DTYPE}, got {frame.schema['ts']}")
    frame = frame.select(
        pl.col("ts"),
        pl.col("symbol").cast(pl.Utf8),
        *(pl.col(c).cast(pl.Float64) for c in ("close", "volume", "spread_mean")),
    )
    if (nulls := frame.select(pl.col("ts", "symbol", "close").null_count()).row(0)) != (0, 0, 0):
        raise FeatureInputError(f"{what}: nulls in ts/symbol/close: {dict(zip(('ts', 'symbol', 'close'), nulls))}")
    if (bad := frame.filter(~pl.col("close").is_finite())).height:
        raise FeatureInputError(f"{what}: non-finite close for {bad['symbol'][0]} at {bad['ts'][0]}")
    dup = frame.group_by("symbol", "ts").len().filter(pl.col("len") > 1)
    if dup.height:
        sym, ts = dup.sort("symbol", "ts").row(0)[:2]
        raise FeatureInputError(f"{what}: {dup.height} duplicate bar(s), first {sym} at {ts}")
    return frame


def tail_for_next_day(bars: pl.DataFrame, bars_per_symbol: int | None = None) -> pl.DataFrame:
    """The last ``max_lookback()`` bars of each symbol: what the next day's features need."""
    n = max_lookback() if bars_per_symbol is None else bars_per_symbol
    return bars.sort("symbol", "ts").group_by("symbol", maintain_order=True).tail(n)


def compute_features(bars_day: pl.DataFrame, history_tail: pl.DataFrame | None = None) -> pl.DataFrame:
    """Features of every row of ``bars_day``; ``history_tail`` = earlier bars (any symbols) to warm up on.

    Output: ``ts, symbol``, the registry's columns (Float64), ``feature_version``; one row per row of
    ``bars_day``, sorted by symbol then ts. Raises :class:`FeatureInputError` on a broken contract,
    duplicate bars, or a history tail that is not strictly before the day for its symbol.
    """
    day = _checked(bars_day, "bars_day").with_columns(pl.lit(True).alias("_in_day"))
    frames = [day]
    if history_tail is not None and history_tail.height:
        tail = _checked(history_tail, "history_tail")
        overlap = (
            tail.group_by("symbol").agg(pl.col("ts").max().alias("tail_last"))
            .join(day.group_by("symbol").agg(pl.col("ts").min().alias("day_first")), on="symbol")
            .filter(pl.col("tail_last") >= pl.col("day_first"))
        )
        if overlap.height:
            sym, last, first = overlap.sort("symbol").row(0)
            raise FeatureInputError(
                f"history_tail for {sym} reaches {last}, not before the day's first bar {first}"
            )
        frames.append(tail.with_columns(pl.lit(False).alias("_in_day")))
    exprs = [e.over("symbol") for f in FEATURES.values() for e in f.build()]
    return (
        pl.concat(frames)
        .sort("symbol", "ts")
        .with_columns(exprs)
        .filter(pl.col("_in_day"))
        .select(
            "ts",
            "symbol",
            *(pl.col(c).cast(pl.Float64) for c in feature_columns()),
            pl.lit(FEATURE_SET_VERSION).alias("feature_version"),
        )
    )

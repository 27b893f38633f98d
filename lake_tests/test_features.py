"""Feature store: point-in-time correctness, day-boundary continuity, values against numpy/pandas.

Bars come from the real EURUSD 2019-02-04 ticks (Dukascopy fixtures) through a small local minute-bar
builder, so the research tests do not depend on the production bar transform.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from lake_resources.catalog.instruments import decimal_factor
from lake_resources.research import features as F
from lake_resources.sources.dukascopy import bi5

TS = pl.Datetime("ns", "UTC")


# --- test data helpers (imported by the other research tests) ----------------------------------


def real_eurusd_ticks(datafeed_dir: Path) -> pl.DataFrame:
    """The 136k real EURUSD ticks of 2019-02-04 in the ticks contract."""
    day_dir = datafeed_dir / "EURUSD" / "2019" / "01" / "04"  # Dukascopy months are zero-based
    hours = [(day_dir / f"{h:02d}h_ticks.bi5").read_bytes() for h in range(24)]
    ticks = bi5.decode_day_ticks(hours, date(2019, 2, 4), decimal_factor("EURUSD"))
    return ticks.with_columns(
        pl.lit("EURUSD").alias("symbol"),
        ((pl.col("bid") + pl.col("ask")) / 2).alias("mid"),
        (pl.col("ask") - pl.col("bid")).alias("spread"),
    )


def minute_bars(ticks: pl.DataFrame, every: str = "1m") -> pl.DataFrame:
    """Bars in the bars contract from ticks of one or more symbols (a stand-in for the real builder)."""
    return (
        ticks.sort("symbol", "ts")
        .group_by_dynamic("ts", every=every, group_by="symbol")
        .agg(
            pl.col("mid").first().alias("open"),
            pl.col("mid").max().alias("high"),
            pl.col("mid").min().alias("low"),
            pl.col("mid").last().alias("close"),
            *(pl.col(side).first().alias(f"{side}_open") for side in ("bid", "ask")),
            *(pl.col(side).max().alias(f"{side}_high") for side in ("bid", "ask")),
            *(pl.col(side).min().alias(f"{side}_low") for side in ("bid", "ask")),
            *(pl.col(side).last().alias(f"{side}_close") for side in ("bid", "ask")),
            pl.col("bid_volume").sum().cast(pl.Float64),
            pl.col("ask_volume").sum().cast(pl.Float64),
            (pl.col("bid_volume").sum() + pl.col("ask_volume").sum()).cast(pl.Float64).alias("volume"),
            pl.len().cast(pl.Int64).alias("tick_count"),
            pl.col("spread").mean().alias("spread_mean"),
        )
        .sort("symbol", "ts")
    )


def shifted_day(bars: pl.DataFrame, days: int, price_factor: float, symbol: str | None = None) -> pl.DataFrame:
    """The same real bars moved ``days`` later with prices scaled: a second, different day."""
    prices = [c for c in bars.columns if c.split("_")[-1] in ("open", "high", "low", "close")]
    out = bars.with_columns(
        (pl.col("ts") + pl.duration(days=days)).cast(TS),
        *(pl.col(c) * price_factor for c in prices),
        pl.col("spread_mean") * price_factor,
    )
    return out.with_columns(pl.lit(symbol).alias("symbol")) if symbol else out


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bars(datafeed_dir: Path) -> pl.DataFrame:
    """Two symbols, two days each: real EURUSD minute bars and a rescaled copy as a second symbol."""
    day1 = minute_bars(real_eurusd_ticks(datafeed_dir))
    assert day1.height == 1440
    day2 = shifted_day(day1, 1, 1.0031)
    other1 = shifted_day(day1.reverse().with_columns(ts=day1["ts"]), 0, 0.97, symbol="EURUSD.B")
    other2 = shifted_day(other1, 1, 1.02)
    return pl.concat([day1, day2, other1, other2]).sort("symbol", "ts")


# --- point in time --------------------------------------------------------------------------------


def test_perturbing_the_future_never_changes_features_at_or_before_t(bars: pl.DataFrame) -> None:
    base = F.compute_features(bars)
    rng = np.random.default_rng(20190204)
    ts_values = bars["ts"].unique().sort()
    for _ in range(8):
        t = ts_values[int(rng.integers(0, len(ts_values)))]
        later = pl.col("ts") > t
        noise = pl.Series(rng.uniform(0.9, 1.1, bars.height))
        perturbed = bars.with_columns(
            pl.when(later).then(pl.col(c) * noise).otherwise(pl.col(c)).alias(c)
            for c in ("close", "volume", "spread_mean")
        )
        truncated = bars.filter(~later)
        for variant in (perturbed, truncated):
            got = F.compute_features(variant).filter(pl.col("ts") <= t)
            assert got.equals(base.filter(pl.col("ts") <= t)), f"features at or before {t} changed"
        # the perturbation is real: something after t did change
        assert not F.compute_features(perturbed).equals(base)


def test_day_two_with_day_one_tail_equals_both_days_at_once(bars: pl.DataFrame) -> None:
    boundary = datetime(2019, 2, 5, tzinfo=timezone.utc)
    day1, day2 = bars.filter(pl.col("ts") < boundary), bars.filter(pl.col("ts") >= boundary)
    tail = F.tail_for_next_day(day1)
    assert tail.group_by("symbol").len()["len"].to_list() == [F.max_lookback()] * 2
    together = F.compute_features(bars).filter(pl.col("ts") >= boundary)
    # Bit-identical: every window is reduced on its own (see features._window_stat).
    assert F.compute_features(day2, tail).equals(together)
    # Without the tail, indicators restart at midnight: the tail does matter.
    assert not F.compute_features(day2).equals(together)


def test_declared_lookbacks_are_exactly_what_each_feature_needs(bars: pl.DataFrame) -> None:
    one = bars.filter(pl.col("symbol") == "EURUSD")
    split = 1440
    full = F.compute_features(one).slice(split, 1)
    for feature in F.FEATURES.values():
        enough = F.compute_features(one[split:], one[split - feature.lookback : split]).head(1)
        short = F.compute_features(one[split:], one[split - feature.lookback + 1 : split]).head(1)
        for column in feature.columns:
            assert full[column].item() is not None, column
            assert enough[column].item() == full[column].item(), column
            assert short[column].item() is None, f"{column}: a shorter tail than its lookback still gave a value"


def test_symbols_are_computed_independently(bars: pl.DataFrame) -> None:
    together = F.compute_features(bars.sample(fraction=1.0, shuffle=True, seed=7))
    for symbol in ("EURUSD", "EURUSD.B"):
        alone = F.compute_features(bars.filter(pl.col("symbol") == symbol))
        assert together.filter(pl.col("symbol") == symbol).equals(alone)


# --- values against independent references ------------------------------------------------------


def test_values_match_numpy_and_pandas_references(bars: pl.DataFrame) -> None:
    one = bars.filter(pl.col("symbol") == "EURUSD")
    got = F.compute_features(one)
    close = one["close"].to_numpy()
    volume = one["volume"].to_numpy()
    spread = one["spread_mean"].to_numpy()
    log_ret = np.log(close[1:] / close[:-1])
    rng = np.random.default_rng(5)
    for i in rng.integers(F.max_lookback(), one.height, 25):
        row = got.row(int(i), named=True)
        assert row["log_return"] == pytest.approx(np.log(close[i] / close[i - 1]), rel=1e-12)
        assert row["volatility_20"] == pytest.approx(np.std(log_ret[i - 20 : i], ddof=1), rel=1e-9)
        win = close[i - 19 : i + 1]
        mid, sd = win.mean(), win.std()
        assert row["bb_mid"] == pytest.approx(mid, rel=1e-12)
        assert row["bb_upper"] == pytest.approx(mid + 2 * sd, rel=1e-12)
        assert row["bb_pct_b"] == pytest.approx((close[i] - (mid - 2 * sd)) / (4 * sd), rel=1e-6)
        assert row["volume_ratio_20"] == pytest.approx(volume[i] / volume[i - 19 : i + 1].mean(), rel=1e-12)
        swin = spread[i - 19 : i + 1]
        assert row["spread_mean_20"] == pytest.approx(swin.mean(), rel=1e-12)
        if swin.std(ddof=1) > 0:
            assert row["spread_z_20"] == pytest.approx((spread[i] - swin.mean()) / swin.std(ddof=1), rel=1e-6, abs=1e-9)

    # RSI and MACD against pandas' infinite EMAs; the truncation leaves out <= 1e-6 of the weight.
    s = pd.Series(close)
    change = s.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=True).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / 14, adjust=True).mean()
    rsi = 100 * gain / (gain + loss)
    macd = s.ewm(span=12, adjust=True).mean() - s.ewm(span=26, adjust=True).mean()
    signal = macd.ewm(span=9, adjust=True).mean()
    late = slice(600, None)  # far past warm-up, where pandas' EMAs have forgotten their start as well
    price_range = close.max() - close.min()
    np.testing.assert_allclose(got["rsi_14"].to_numpy()[late], rsi.to_numpy()[late], atol=1e-3)
    np.testing.assert_allclose(got["macd"].to_numpy()[late], macd.to_numpy()[late], atol=4e-6 * price_range)
    np.testing.assert_allclose(got["macd_signal"].to_numpy()[late], signal.to_numpy()[late], atol=4e-6 * price_range)
    assert got["macd"].abs().max() > 100 * 4e-6 * price_range  # the tolerance is far below the signal


def test_features_are_null_exactly_until_their_lookback(bars: pl.DataFrame) -> None:
    got = F.compute_features(bars.filter(pl.col("symbol") == "EURUSD"))
    for feature in F.FEATURES.values():
        for column in feature.columns:
            assert got[column].null_count() == feature.lookback, column
    assert got["feature_version"].unique().to_list() == [F.FEATURE_SET_VERSION]
    assert got.columns == ["ts", "symbol", *F.feature_columns(), "feature_version"]


# --- versioning and bad input -------------------------------------------------------------------


def test_feature_set_version_is_stable_across_processes_and_tracks_definitions(monkeypatch) -> None:
    code = "from lake_resources.research.features import FEATURE_SET_VERSION as v; print(v)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == F.FEATURE_SET_VERSION
    bumped = dict(F.FEATURES)
    bumped["rsi"] = F.FeatureDef(**{**F.FEATURES["rsi"].__dict__, "version": F.FEATURES["rsi"].version + 1})
    monkeypatch.setattr(F, "FEATURES", bumped)
    assert F._feature_set_version() != F.FEATURE_SET_VERSION


def test_bad_input_is_named(bars: pl.DataFrame) -> None:
    day = bars.filter(pl.col("symbol") == "EURUSD")
    with pytest.raises(F.FeatureInputError, match=r"bars_day: missing bars column\(s\) \['spread_mean'\]"):
        F.compute_features(day.drop("spread_mean"))
    nan_close = day.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(float("nan")).otherwise(pl.col("close")).alias("close"))
    with pytest.raises(F.FeatureInputError, match="bars_day: non-finite close for EURUSD at 2019-02-04 00:05:00"):
        F.compute_features(nan_close)
    with pytest.raises(F.FeatureInputError, match="duplicate bar.*EURUSD"):
        F.compute_features(pl.concat([day, day.head(1)]))
    with pytest.raises(F.FeatureInputError, match="history_tail for EURUSD reaches"):
        F.compute_features(day.slice(100), day.head(101))
    with pytest.raises(F.FeatureInputError, match="history_tail: column ts must be"):
        F.compute_features(day.slice(100), day.head(100).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC"))))

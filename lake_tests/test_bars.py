"""Bars against Dukascopy's own candles (acceptance tests), against pandas, and their properties.

The real day EURUSD 2019-02-04: minute bars from the 24 hourly tick files must equal Dukascopy's BID
and ASK minute candles in all 1,440 minutes; hourly and daily roll-ups must equal its hourly and
daily candles. Dukascopy's candle volumes are Float32: ours are compared to Float32 precision
(at most 1 unit in the last place after rounding ours to Float32).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import polars as pl
import pytest

from lake_resources.catalog.instruments import decimal_factor
from lake_resources.sources.dukascopy import bi5
from lake_resources.transforms import (
    BAR_COLUMNS,
    BAR_SCHEMA,
    FrameContractError,
    empty_bars,
    minute_bars,
    minute_bars_from_parquet,
    normalize_ticks,
    rollup,
    uniform_bars,
)

DAY = date(2019, 2, 4)
SYMBOL = "EURUSD"
UTC = timezone.utc
OHLC = ("open", "high", "low", "close")


def _candles(datafeed_dir, relative: str, period_start: datetime) -> pl.DataFrame:
    payload = (datafeed_dir / SYMBOL / relative).read_bytes()
    return bi5.decode_candles(payload, period_start, decimal_factor(SYMBOL), name=relative)


@pytest.fixture(scope="module")
def candles(datafeed_dir) -> dict[tuple[str, str], pl.DataFrame]:
    """Dukascopy's candles: (side, period) -> frame. MM in the paths is zero-based (01 = February)."""
    out = {}
    for side in ("BID", "ASK"):
        out[side, "minute"] = _candles(
            datafeed_dir, f"2019/01/04/{side}_candles_min_1.bi5", datetime(2019, 2, 4, tzinfo=UTC)
        )
        out[side, "hour"] = _candles(
            datafeed_dir, f"2019/01/{side}_candles_hour_1.bi5", datetime(2019, 2, 1, tzinfo=UTC)
        )
        out[side, "day"] = _candles(
            datafeed_dir, f"2019/{side}_candles_day_1.bi5", datetime(2019, 1, 1, tzinfo=UTC)
        )
    return out


def _assert_float32_volume(ours: pl.Series, theirs: pl.Series) -> None:
    """Our Float64 volume, rounded to Float32, is within 1 ulp of Dukascopy's Float32 volume."""
    a = ours.cast(pl.Float32).to_numpy()
    b = theirs.cast(pl.Float32).to_numpy()
    assert (a > 0).all() and (b > 0).all()  # positive floats: the int32 view orders like the value
    ulps = np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1, f"volume differs by {ulps.max()} float32 ulps at row {int(ulps.argmax())}"


def _assert_matches_candles(bars: pl.DataFrame, bid: pl.DataFrame, ask: pl.DataFrame) -> None:
    assert bars["ts"].to_list() == bid["ts"].to_list() == ask["ts"].to_list()
    for prefix, candle in (("bid_", bid), ("ask_", ask)):
        for x in OHLC:
            mismatched = (bars[f"{prefix}{x}"] != candle[x]).sum()
            assert mismatched == 0, f"{prefix}{x} differs from Dukascopy in {mismatched} bars"
        _assert_float32_volume(bars[f"{prefix}volume"], candle["volume"])


# --- acceptance: Dukascopy's own candles ------------------------------------------------------------


def test_minute_bars_equal_dukascopy_minute_candles_in_all_1440_minutes(bars_1m, candles):
    assert bars_1m.height == 1440
    assert bars_1m.schema == pl.Schema(BAR_SCHEMA)
    _assert_matches_candles(bars_1m, candles["BID", "minute"], candles["ASK", "minute"])


def test_hourly_rollup_equals_dukascopy_hourly_candles(bars_1m, candles):
    hours = rollup(bars_1m, "1h")
    assert hours.height == 24

    def of_day(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("ts").dt.date() == DAY)

    _assert_matches_candles(hours, of_day(candles["BID", "hour"]), of_day(candles["ASK", "hour"]))


def test_daily_rollup_equals_dukascopy_daily_candle(bars_1m, candles):
    days = rollup(bars_1m, "1d")
    bid_day, ask_day = (
        candles[side, "day"].filter(pl.col("ts") == datetime(2019, 2, 4, tzinfo=UTC))
        for side in ("BID", "ASK")
    )
    _assert_matches_candles(days, bid_day, ask_day)


def _vendor_view(candles: pl.DataFrame) -> pl.DataFrame:
    """Dukascopy candles as vendor bars (no bid/ask sides), dropping its zero-volume filler bars."""
    return uniform_bars(candles.filter(pl.col("volume") > 0).with_columns(symbol=pl.lit(SYMBOL)))


def test_dukascopy_days_are_utc_days(candles):
    """Each daily candle of February is the UTC-day roll-up of that day's hourly candles.

    Dukascopy fills closed hours (weekends) with zero-volume bars at the last price; they are not
    part of its daily candles (2019-02-03, a Sunday, opens at its 22:00 bar), so they are left out.
    """
    for side in ("BID", "ASK"):
        february = candles[side, "day"].filter(pl.col("ts").dt.month() == 2, pl.col("volume") > 0)
        from_hours = rollup(_vendor_view(candles[side, "hour"]), "1d")
        assert from_hours["ts"].to_list() == february["ts"].to_list()
        assert len(february) == 24  # 28 days less the four Saturdays
        for x in OHLC:
            assert (from_hours[x] == february[x]).all(), f"{side} {x}"
        _assert_float32_volume(from_hours["volume"], february["volume"])


def test_new_york_close_days_do_not_match_dukascopy_daily_candles(candles):
    """The other common FX convention (days ending 17:00 New York = 22:00 UTC in winter) does not fit."""
    hours = _vendor_view(candles["BID", "hour"])
    ny_day = hours.filter(
        pl.col("ts") >= datetime(2019, 2, 3, 22, tzinfo=UTC),
        pl.col("ts") < datetime(2019, 2, 4, 22, tzinfo=UTC),
    )
    daily = candles["BID", "day"].filter(pl.col("ts") == datetime(2019, 2, 4, tzinfo=UTC))
    assert ny_day["open"][0] != daily["open"][0]
    assert ny_day["close"][-1] != daily["close"][0]


def test_vendor_minute_candles_roll_up_to_dukascopy_hourly_candles(candles):
    """Roll-ups over vendor-style bars (null bid/ask sides and tick counts) work and stay null."""
    minutes = _vendor_view(candles["BID", "minute"])
    hours = rollup(minutes, "1h")
    expected = candles["BID", "hour"].filter(pl.col("ts").dt.date() == DAY)
    for x in OHLC:
        assert (hours[x] == expected[x]).all()
    _assert_float32_volume(hours["volume"], expected["volume"])
    for column in ("bid_open", "ask_close", "bid_volume", "ask_volume", "tick_count", "spread_mean"):
        assert hours[column].null_count() == 24, column
    assert hours.schema == pl.Schema(BAR_SCHEMA)


# --- an independent implementation: pandas resample ---------------------------------------------------


def test_minute_bars_match_a_pandas_resample_of_the_same_ticks(day_ticks, bars_1m):
    frame = (
        day_ticks.with_columns(pl.col("bid_volume", "ask_volume").cast(pl.Float64))
        .to_pandas()
        .set_index("ts")
    )
    by_minute = frame.resample("1min")
    expected = pd.concat(
        [
            by_minute["mid"].ohlc(),
            by_minute["bid"].ohlc().add_prefix("bid_"),
            by_minute["ask"].ohlc().add_prefix("ask_"),
            by_minute[["bid_volume", "ask_volume"]].sum(),
            by_minute["mid"].count().rename("tick_count"),
            by_minute["spread"].mean().rename("spread_mean"),
        ],
        axis=1,
    )
    expected = expected[expected["tick_count"] > 0]
    assert bars_1m["tick_count"].sum() == day_ticks.height
    # volumes too are exact: Float32 tick volumes add up exactly in Float64, in any order
    for column in (
        "open",
        "high",
        "low",
        "close",
        "bid_open",
        "ask_low",
        "tick_count",
        "bid_volume",
        "ask_volume",
    ):
        assert np.array_equal(bars_1m[column].to_numpy(), expected[column].to_numpy()), column
    np.testing.assert_allclose(
        bars_1m["spread_mean"].to_numpy(), expected["spread_mean"].to_numpy(), rtol=1e-12
    )
    assert np.array_equal(
        bars_1m["volume"].to_numpy(), (bars_1m["bid_volume"] + bars_1m["ask_volume"]).to_numpy()
    )


# --- properties ---------------------------------------------------------------------------------------


def test_bars_do_not_depend_on_the_order_ticks_arrive_in(day_ticks, bars_1m):
    assert day_ticks["ts"].n_unique() == day_ticks.height  # no same-ms ties on this day: order is unique
    shuffled = day_ticks.sample(fraction=1.0, shuffle=True, seed=7)
    assert not shuffled["ts"].is_sorted()
    assert minute_bars(shuffled).equals(bars_1m)


def test_ticks_sharing_a_millisecond_open_and_close_in_file_order():
    t0 = datetime(2019, 2, 4, 10, 0, tzinfo=UTC)
    ms = [0, 0, 0, 59_999, 59_999, 60_000]
    bids = [1.0, 1.3, 1.1, 1.2, 1.05, 2.0]
    ticks = normalize_ticks(
        pl.DataFrame(
            {
                "ts": [t0 + timedelta(milliseconds=m) for m in ms],
                "bid": bids,
                "ask": [b + 0.01 for b in bids],
                "bid_volume": [1.0] * 6,
                "ask_volume": [1.0] * 6,
            }
        ).with_columns(pl.col("ts").dt.cast_time_unit("ns")),
        SYMBOL,
    )
    bars = minute_bars(ticks)
    assert bars.select("ts", "bid_open", "bid_high", "bid_low", "bid_close", "tick_count").rows() == [
        (t0, 1.0, 1.3, 1.0, 1.05, 5),
        (t0 + timedelta(minutes=1), 2.0, 2.0, 2.0, 2.0, 1),
    ]


def _assert_bars_equal(left: pl.DataFrame, right: pl.DataFrame) -> None:
    """Exact on every column but spread_mean, whose re-weighting rounds differently (1e-12 relative)."""
    assert left.drop("spread_mean").equals(right.drop("spread_mean"))
    np.testing.assert_allclose(left["spread_mean"].to_numpy(), right["spread_mean"].to_numpy(), rtol=1e-12)


def test_rollups_compose(bars_1m):
    _assert_bars_equal(rollup(bars_1m, "1h"), rollup(rollup(bars_1m, "5m"), "1h"))
    _assert_bars_equal(rollup(bars_1m, "1d"), rollup(rollup(rollup(bars_1m, "15m"), "1h"), "1d"))
    five = rollup(bars_1m, "5m")
    assert five.height == 288 and five["tick_count"].sum() == bars_1m["tick_count"].sum()


def test_rollup_spread_mean_is_tick_weighted(day_ticks, bars_1m):
    day = rollup(bars_1m, "1d")
    assert day["spread_mean"][0] == pytest.approx(day_ticks["spread"].mean(), rel=1e-12)
    assert day["tick_count"][0] == day_ticks.height


def test_rollup_skips_nulls_and_keeps_all_null_columns_null():
    t0 = datetime(2019, 2, 4, 10, 0, tzinfo=UTC)
    vendor = pl.DataFrame(
        {
            "ts": [t0 + timedelta(minutes=m) for m in range(4)],
            "symbol": ["AAPL"] * 4,
            "open": [10.0, 11.0, 12.0, 13.0],
            "high": [11.0, 12.0, 13.0, 14.0],
            "low": [9.0, 10.0, 11.0, 12.0],
            "close": [11.0, 12.0, 13.0, 12.5],
            "volume": [100.0, 200.0, 300.0, 400.0],
            "bid_open": [None, 10.9, 11.9, None],
            "bid_close": [None, 11.9, None, None],
            "trade_count": [5, 6, 7, 8],
            "vwap": [10.5, 11.5, 12.5, 13.0],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    hour = rollup(uniform_bars(vendor), "1h")
    assert hour.select("open", "high", "low", "close", "volume", "bid_open", "bid_close").row(0) == (
        10.0,
        14.0,
        9.0,
        12.5,
        1000.0,
        10.9,
        11.9,
    )
    for column in ("bid_high", "ask_open", "bid_volume", "tick_count", "spread_mean"):
        assert hour[column][0] is None, column
    # extras are dropped unless the caller says how to aggregate them
    assert hour.columns == list(BAR_COLUMNS)
    with_extras = rollup(uniform_bars(vendor), "1h", extra={"trade_count": "sum", "vwap": "last"})
    assert with_extras.columns == [*BAR_COLUMNS, "trade_count", "vwap"]
    assert with_extras.select("trade_count", "vwap").row(0) == (26, 13.0)


def test_rollup_refuses_what_it_cannot_do(bars_1m):
    with pytest.raises(ValueError, match="rollup interval '2m' not supported"):
        rollup(bars_1m, "2m")
    with pytest.raises(FrameContractError, match=r"missing column\(s\) \['tick_count'\]"):
        rollup(bars_1m.drop("tick_count"), "1h")
    with pytest.raises(ValueError, match="aggregation 'median'"):
        rollup(bars_1m.with_columns(x=pl.lit(1.0)), "1h", extra={"x": "median"})
    with pytest.raises(FrameContractError, match="extra column 'nope'"):
        rollup(bars_1m, "1h", extra={"nope": "sum"})


def test_empty_input_gives_empty_frames_with_the_bars_schema(day_ticks, tmp_path):
    empty_ticks = day_ticks.head(0)
    assert minute_bars(empty_ticks).schema == pl.Schema(BAR_SCHEMA)
    assert minute_bars(empty_ticks).height == 0
    assert rollup(empty_bars(), "1h").schema == pl.Schema(BAR_SCHEMA)
    path = tmp_path / "empty.parquet"
    empty_ticks.write_parquet(path)
    from_parquet = minute_bars_from_parquet(path)
    assert from_parquet.schema == pl.Schema(BAR_SCHEMA) and from_parquet.height == 0
    vendor = pl.DataFrame(
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "symbol": pl.Utf8,
            **{c: pl.Float64 for c in (*OHLC, "volume")},
        }
    )
    assert uniform_bars(vendor).schema == pl.Schema(BAR_SCHEMA)


def test_minute_bars_refuse_null_timestamps(day_ticks):
    broken = day_ticks.head(3).with_columns(
        ts=pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("ts"))
    )
    with pytest.raises(FrameContractError, match="1 tick.* null ts"):
        minute_bars(broken)


def test_several_symbols_are_barred_separately(day_ticks, bars_1m):
    other = day_ticks.with_columns(
        symbol=pl.lit("GBPUSD"), bid=pl.col("bid") + 0.1, ask=pl.col("ask") + 0.1, mid=pl.col("mid") + 0.1
    )
    mixed = pl.concat([day_ticks, other]).sort("ts", maintain_order=True)
    bars = minute_bars(mixed)
    assert bars.filter(pl.col("symbol") == SYMBOL).equals(bars_1m)
    assert bars.filter(pl.col("symbol") == "GBPUSD").equals(minute_bars(other))
    assert bars["symbol"].to_list() == [SYMBOL] * 1440 + ["GBPUSD"] * 1440  # sorted by symbol, then ts


# --- from Parquet ---------------------------------------------------------------------------------------


def test_minute_bars_from_parquet_equal_in_memory_bars(day_ticks, bars_1m, tmp_path):
    noon = datetime(2019, 2, 4, 12, tzinfo=UTC)
    morning, afternoon = tmp_path / "am.parquet", tmp_path / "pm.parquet"
    day_ticks.filter(pl.col("ts") < noon).write_parquet(morning, row_group_size=10_000)
    day_ticks.filter(pl.col("ts") >= noon).write_parquet(afternoon, row_group_size=10_000)
    # file order does not matter: ticks are sorted by ts before bars are built
    assert minute_bars_from_parquet([afternoon, morning]).equals(bars_1m)
    assert minute_bars_from_parquet([morning, afternoon], symbol=SYMBOL, streaming=True).equals(bars_1m)
    start, end = datetime(2019, 2, 4, 11, 30, tzinfo=UTC), datetime(2019, 2, 4, 12, 30, tzinfo=UTC)
    window = minute_bars_from_parquet([morning, afternoon], symbol=SYMBOL, start=start, end=end)
    assert window.height == 60
    assert window.equals(bars_1m.filter(pl.col("ts") >= start, pl.col("ts") < end))
    assert minute_bars_from_parquet([morning], symbol="GBPUSD").height == 0


def test_minute_bars_from_parquet_with_two_symbols(day_ticks, bars_1m, tmp_path):
    other = day_ticks.with_columns(
        symbol=pl.lit("GBPUSD"), bid=pl.col("bid") + 0.1, ask=pl.col("ask") + 0.1, mid=pl.col("mid") + 0.1
    )
    day_ticks.write_parquet(tmp_path / "eurusd.parquet")
    other.write_parquet(tmp_path / "gbpusd.parquet")
    both = minute_bars_from_parquet(
        [tmp_path / "gbpusd.parquet", tmp_path / "eurusd.parquet"], streaming=True
    )
    assert both.filter(pl.col("symbol") == SYMBOL).equals(bars_1m)
    assert both.filter(pl.col("symbol") == "GBPUSD").equals(minute_bars(other))


# --- vendor bars --------------------------------------------------------------------------------------


def test_uniform_bars_maps_vendor_bars_to_the_contract(candles):
    vendor = (
        candles["BID", "minute"]
        .head(5)
        .with_columns(
            pl.col("ts").dt.convert_time_zone("America/New_York").dt.cast_time_unit("us"),
            symbol=pl.lit("AAPL"),
            vwap=pl.col("close"),
            trade_count=pl.lit(3, pl.Int32),
        )
        .reverse()
    )
    bars = uniform_bars(vendor)
    assert bars.columns == [*BAR_COLUMNS, "vwap", "trade_count"]
    assert {c: bars.schema[c] for c in BAR_COLUMNS} == BAR_SCHEMA
    assert bars["ts"].to_list() == candles["BID", "minute"]["ts"].head(5).to_list()  # UTC, sorted
    assert bars["volume"].to_list() == candles["BID", "minute"]["volume"].head(5).cast(pl.Float64).to_list()
    assert bars.select(pl.col("bid_open", "ask_close", "tick_count", "spread_mean").null_count()).row(0) == (
        5,
        5,
        5,
        5,
    )


def test_uniform_bars_refuses_incomplete_or_ambiguous_vendor_bars(candles):
    vendor = candles["BID", "minute"].head(3).with_columns(symbol=pl.lit("AAPL"))
    with pytest.raises(FrameContractError, match=r"vendor bars: missing column\(s\) \['volume'\]"):
        uniform_bars(vendor.drop("volume"))
    with pytest.raises(FrameContractError, match="naive timestamps"):
        uniform_bars(vendor.with_columns(pl.col("ts").dt.replace_time_zone(None)))
    with pytest.raises(FrameContractError, match="cannot be cast"):
        uniform_bars(vendor.with_columns(open=pl.lit("n/a")))

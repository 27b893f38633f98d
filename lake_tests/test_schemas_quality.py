"""pandera schemas, domain checks and trading calendars, on the real day EURUSD 2019-02-04 and on
frames broken on purpose (every check must fail on the data it exists to catch)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from lake_resources.catalog.calendar import Market, expected_hours, market_of, trading_sessions
from lake_resources.catalog.datasets import DATASETS
from lake_resources.catalog.instruments import decimal_factor
from lake_resources.catalog.schemas import FAILURE_COLUMNS, FAILURE_SAMPLE, SCHEMAS, validate_frame
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.generate import generate
from lake_resources.sources.dukascopy import bi5
from lake_resources.sources.vendor import combine_results, parse_pull
from lake_resources.transforms import rollup, uniform_bars
from lake_resources.transforms.quality import (
    MAX_FAILING_ROWS,
    CheckOutcome,
    check_duplicates,
    check_gaps,
    check_ohlc,
    check_prices,
    check_row_count_anomaly,
    check_timestamps_in_day,
)

DAY = date(2019, 2, 4)
SYMBOL = "EURUSD"
UTC = timezone.utc
ROW = pl.int_range(pl.len())


@pytest.fixture(scope="module")
def hourly_candles(datafeed_dir) -> pl.DataFrame:
    """Dukascopy's BID hourly candles of February 2019 (zero-volume filler bars in closed hours)."""
    payload = (datafeed_dir / SYMBOL / "2019/01/BID_candles_hour_1.bi5").read_bytes()
    return bi5.decode_candles(payload, datetime(2019, 2, 1, tzinfo=UTC), decimal_factor(SYMBOL))


def _at(rows: list[int], value, otherwise: str) -> pl.Expr:
    return pl.when(ROW.is_in(rows)).then(value).otherwise(pl.col(otherwise))


def _greeks() -> pl.DataFrame:
    ts = datetime(2019, 2, 4, 15, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [ts, ts],
            "symbol": ["AAPL", "AAPL"],
            "expiry": [date(2019, 3, 15)] * 2,
            "strike": [170.0, 170.0],
            "right": ["C", "P"],
            "iv": [0.25, 0.27],
            "delta": [0.55, -0.45],
            "gamma": [0.03, 0.03],
            "theta": [-0.05, -0.04],
            "vega": [0.2, 0.2],
            "mark": [6.1, 4.9],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))


def _headlines() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [datetime(2019, 2, 4, 14, 30, tzinfo=UTC), datetime(2019, 2, 4, 16, tzinfo=UTC)],
            "symbol": ["AAPL", "MSFT"],
            "headline": ["Apple beats estimates", "Microsoft cloud grows"],
            "source": ["wire", "wire"],
            "sentiment": [0.6, None],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))


# --- pandera schemas ------------------------------------------------------------------------------


def test_every_schema_is_for_a_dataset_of_the_lake():
    assert set(SCHEMAS) <= set(DATASETS)
    assert {
        "ticks",
        "bars_1m",
        "bars_5m",
        "bars_1h",
        "bars_1d",
        "option_greeks",
        "headlines",
        "features",
    } <= set(SCHEMAS)
    with pytest.raises(LakeValidationError, match="no schema for dataset 'tickz'"):
        validate_frame("tickz", pl.DataFrame())


def test_real_ticks_and_bars_pass_their_schemas(day_ticks, bars_1m):
    outcome = validate_frame("ticks", day_ticks)
    assert outcome.passed and outcome.failure_count == 0, outcome.message
    assert outcome.failures.schema == pl.Schema(FAILURE_COLUMNS)
    assert validate_frame("bars_1m", bars_1m).passed
    for every in ("5m", "1h", "1d"):
        outcome = validate_frame(f"bars_{every}", rollup(bars_1m, every))
        assert outcome.passed, outcome.message
    assert validate_frame("ticks", day_ticks.lazy()).passed  # lazy frames get their data checked too


def test_ticks_schema_catches_broken_ticks(day_ticks):
    broken = day_ticks.head(50).with_columns(
        bid=_at([3, 4, 5], -1.0, "bid"),
        ask=_at([7], float("nan"), "ask"),
    )
    outcome = validate_frame("ticks", broken)
    assert not outcome.passed
    failing = outcome.failures
    assert failing.columns == list(FAILURE_COLUMNS)
    assert failing.filter(pl.col("column") == "bid", pl.col("check") == "greater_than(0)")[
        "index"
    ].to_list() == [3, 4, 5]
    assert failing.filter(pl.col("column") == "ask", pl.col("check") == "finite")["index"].to_list() == [7]
    assert "bid greater_than(0) x3" in outcome.message and "ask finite x1" in outcome.message


def test_ticks_schema_catches_order_dtype_and_extra_columns(day_ticks):
    unsorted = validate_frame("ticks", day_ticks.head(10).reverse())
    assert not unsorted.passed and unsorted.failure_count == 9
    assert "ticks must be sorted by ts x9" in unsorted.message
    wrong_unit = validate_frame(
        "ticks", day_ticks.head(10).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    )
    assert not wrong_unit.passed and wrong_unit.failures["column"].to_list() == ["ts"]
    extra = validate_frame("ticks", day_ticks.head(10).with_columns(note=pl.lit("x")))
    assert not extra.passed and "column_in_schema" in extra.message
    crossed = validate_frame(
        "ticks", day_ticks.head(10).with_columns(bid=_at([2], pl.col("ask") + 0.001, "bid"))
    )
    assert "crossed quote: bid > ask x1" in crossed.message


def test_failures_are_sampled_but_counted_in_full(day_ticks):
    broken = day_ticks.with_columns(bid_volume=pl.lit(-1.0, pl.Float32))
    outcome = validate_frame("ticks", broken)
    assert outcome.failure_count == day_ticks.height
    assert outcome.failures.height == FAILURE_SAMPLE


def test_validation_never_raises_even_when_a_check_cannot_run(bars_1m):
    outcome = validate_frame("bars_1m", bars_1m.drop("open"))
    assert not outcome.passed
    assert "open" in outcome.failures["column"].to_list()
    outcome = validate_frame("features", pl.DataFrame({"x": [1]}))
    assert not outcome.passed and outcome.failure_count >= 2  # ts and symbol both missing


def test_bars_schema_allows_vendor_nulls_and_extras_but_not_broken_bars(bars_1m, hourly_candles):
    vendor = uniform_bars(hourly_candles.with_columns(symbol=pl.lit("AAPL"), vwap=pl.col("close")))
    outcome = validate_frame("bars_1h", vendor)
    assert outcome.passed, outcome.message
    low_above_open = validate_frame(
        "bars_1m", bars_1m.with_columns(bid_low=_at([10], pl.col("bid_open") + 0.001, "bid_low"))
    )
    assert low_above_open.failures.select("column", "check", "index").rows() == [
        ("(row)", "bid_low must be <= bid_open and bid_close", 10)
    ]
    duplicated = validate_frame("bars_1m", pl.concat([bars_1m.head(3), bars_1m.slice(2, 1)]))
    assert "one bar per (symbol, ts), sorted by ts x1" in duplicated.message
    zero_ticks = validate_frame("bars_1m", bars_1m.with_columns(tick_count=_at([0], 0, "tick_count")))
    assert "tick_count greater_than_or_equal_to(1) x1" in zero_ticks.message


def test_vendor_and_feature_schemas(bars_1m):
    assert validate_frame("option_greeks", _greeks()).passed
    broken = _greeks().with_columns(right=pl.lit("X"), delta=pl.lit(1.5), expiry=pl.lit(date(2019, 1, 1)))
    message = validate_frame("option_greeks", broken).message
    for expected in ("right isin", "delta in_range(-1.0, 1.0)", "expiry before the quote date"):
        assert expected in message
    wrong_sign = _greeks().with_columns(delta=pl.col("delta") * -1)
    assert "calls need delta >= 0, puts delta <= 0 x2" in validate_frame("option_greeks", wrong_sign).message

    assert validate_frame("headlines", _headlines()).passed
    broken = _headlines().with_columns(headline=pl.lit(""), sentiment=pl.lit(3.0))
    message = validate_frame("headlines", broken).message
    assert "headline str_contains" in message and "sentiment in_range" in message

    features = bars_1m.select("ts", "symbol", ret_1=pl.col("close").pct_change(), spread_mean="spread_mean")
    assert validate_frame("features", features).passed
    assert not validate_frame("features", pl.concat([features, features.tail(1)])).passed


@pytest.mark.parametrize("day", [date(2019, 2, 4), date(2019, 7, 8)], ids=["winter", "summer"])
def test_parsed_vendor_pulls_pass_the_schemas_and_checks(tmp_path, day):
    """The sample vendor's pulls, parsed by the vendor source, fit the schemas, bars and calendar."""
    generate(tmp_path, ["AAPL"], day, day, seed=3)
    frames = {}
    for feed in ("bars", "greeks", "headlines"):
        pulls = sorted((tmp_path / "vendor").glob(f"*/{feed}/{day}/AAPL/*.json*"))
        assert pulls, feed
        result = combine_results(feed, [parse_pull(feed, p.read_bytes(), pull_id=p.name) for p in pulls])
        assert not result.quarantine
        frames[feed] = result.frame
    bars = uniform_bars(frames["bars"])
    assert bars.height == 390
    for dataset, frame in (
        ("bars_1m", bars),
        ("bars_1h", rollup(bars, "1h")),
        ("option_greeks", frames["greeks"]),
        ("headlines", frames["headlines"]),
    ):
        outcome = validate_frame(dataset, frame)
        assert outcome.passed, outcome.message
    for outcome in (check_prices(bars), check_ohlc(bars), check_gaps(bars, "AAPL", day)):
        assert outcome.passed, outcome.description
    assert check_gaps(bars, "AAPL", day).metadata["hours_with_data"] == expected_hours("AAPL", day)


# --- domain checks on the real day ------------------------------------------------------------------


def _assert_json_able(outcome: CheckOutcome) -> None:
    json.dumps(outcome.metadata)


def test_real_day_passes_every_domain_check(day_ticks, bars_1m):
    outcomes = [
        check_timestamps_in_day(day_ticks, DAY),
        check_timestamps_in_day(bars_1m, DAY),
        check_prices(day_ticks),
        check_prices(bars_1m),
        check_ohlc(bars_1m),
        check_gaps(day_ticks, SYMBOL, DAY),
        check_gaps(bars_1m, SYMBOL, DAY),
        check_duplicates(day_ticks),
        check_duplicates(bars_1m, ["symbol", "ts"]),
    ]
    for outcome in outcomes:
        assert outcome.passed, outcome.description
        assert outcome.failing_rows is None
        _assert_json_able(outcome)
    assert outcomes[5].metadata["expected_hours"] == list(range(24))


def test_timestamps_check_reports_rows_outside_the_day_and_going_back(day_ticks):
    broken = day_ticks.head(20).with_columns(
        ts=pl.when(ROW == 4)
        .then(pl.col("ts") + timedelta(days=1))
        .when(ROW == 9)
        .then(pl.col("ts") - timedelta(seconds=5))
        .otherwise(pl.col("ts"))
    )
    outcome = check_timestamps_in_day(broken, DAY)
    assert not outcome.passed and outcome.severity == "ERROR"
    rows = dict(outcome.failing_rows.select("row", "problem").iter_rows())
    # row 4 is in the next day, row 5 then goes back; row 9 goes back (to the day before)
    assert rows == {
        4: "ts outside 2019-02-04 UTC",
        5: "ts earlier than the row before",
        9: "ts outside 2019-02-04 UTC; ts earlier than the row before",
    }
    assert outcome.description.startswith("3 of 20 rows have a bad timestamp for 2019-02-04")
    assert "rows [4, 5, 9]" in outcome.description
    _assert_json_able(outcome)


def test_prices_check_catches_non_positive_nan_and_crossed(day_ticks, bars_1m):
    broken = (
        day_ticks.head(10)
        .with_columns(bid=_at([1], 0.0, "bid"), ask=_at([2], float("nan"), "ask"), mid=_at([3], -1.0, "mid"))
        .with_columns(bid=_at([6], pl.col("ask") + 0.0001, "bid"))
    )
    outcome = check_prices(broken)
    assert not outcome.passed
    assert dict(outcome.failing_rows.select("row", "problem").iter_rows()) == {
        1: "bid not a positive finite price",
        2: "ask not a positive finite price",
        3: "mid not a positive finite price",
        6: "crossed: bid > ask",
    }
    crossed_bars = bars_1m.with_columns(bid_high=_at([100], pl.col("ask_high") + 0.001, "bid_high"))
    outcome = check_prices(crossed_bars)
    assert outcome.failing_rows["row"].to_list() == [100]
    assert "crossed: bid_high > ask_high: 1" in outcome.description


def test_prices_check_accepts_vendor_nulls_but_not_missing_core_prices(hourly_candles):
    vendor = uniform_bars(hourly_candles.with_columns(symbol=pl.lit("AAPL")))
    assert check_prices(vendor).passed
    outcome = check_prices(vendor.with_columns(close=_at([0], None, "close")))
    assert not outcome.passed and outcome.failing_rows["problem"].to_list() == ["close is null"]


def test_ohlc_check_catches_each_side(bars_1m):
    broken = bars_1m.with_columns(
        high=_at([0], pl.col("open") - 0.001, "high"),
        bid_low=_at([5], pl.col("bid_close") + 0.001, "bid_low"),
        ask_close=_at([7], pl.col("ask_high") + 0.001, "ask_close"),
    )
    outcome = check_ohlc(broken)
    problems = dict(outcome.failing_rows.select("row", "problem").iter_rows())
    assert problems[0].startswith("open > high")
    assert "bid_low > bid_close" in problems[5]
    assert problems[7] == "ask_close > ask_high"
    assert outcome.metadata["sides"] == ["mid", "bid_", "ask_"]


def test_gap_check_lists_missing_trading_hours(day_ticks, bars_1m):
    holed = day_ticks.filter(~pl.col("ts").dt.hour().is_in([5, 6, 7, 22]))
    outcome = check_gaps(holed, SYMBOL, DAY)
    assert not outcome.passed and outcome.severity == "WARN"  # the real feed has the odd empty hour
    assert check_gaps(holed, SYMBOL, DAY, severity="ERROR").severity == "ERROR"
    assert outcome.metadata["missing_hours"] == [5, 6, 7, 22]
    assert "4 of 24 trading hours have no data: 05:00, 06:00, 07:00, 22:00 UTC" in outcome.description
    assert outcome.failing_rows["hour_start"].to_list() == [
        datetime(2019, 2, 4, h, tzinfo=UTC) for h in (5, 6, 7, 22)
    ]
    assert check_gaps(bars_1m.filter(pl.col("ts").dt.hour() != 13), SYMBOL, DAY).metadata[
        "missing_hours"
    ] == [13]
    _assert_json_able(outcome)


def test_gap_check_follows_the_calendar_on_weekends_and_unknown_markets(hourly_candles):
    saturday, sunday = date(2019, 2, 2), date(2019, 2, 3)
    trading = uniform_bars(hourly_candles.filter(pl.col("volume") > 0).with_columns(symbol=pl.lit(SYMBOL)))
    assert check_gaps(trading, SYMBOL, saturday).passed
    assert check_gaps(trading, SYMBOL, sunday).metadata["expected_hours"] == [22, 23]
    assert check_gaps(trading, SYMBOL, sunday).passed
    assert not check_gaps(trading.filter(pl.col("ts").dt.hour() != 23), SYMBOL, sunday).passed
    unknown = check_gaps(trading.head(0), "USA500IDXUSD", DAY)
    assert unknown.passed and unknown.severity == "WARN" and "no trading-hours rule" in unknown.description


def test_duplicate_check_finds_exact_copies_only(day_ticks, bars_1m):
    copied = pl.concat([day_ticks.head(10), day_ticks.slice(3, 2)])
    outcome = check_duplicates(copied)
    assert not outcome.passed
    assert outcome.failing_rows["row"].to_list() == [10, 11]
    assert "2 of 12 rows repeat an earlier row on all columns" in outcome.description
    # same millisecond, different price: a real second tick, not a duplicate
    same_ms = pl.concat([day_ticks.head(3), day_ticks.slice(2, 1).with_columns(bid=pl.col("bid") - 0.00001)])
    assert check_duplicates(same_ms).passed
    assert not check_duplicates(same_ms, ["symbol", "ts"]).passed
    two_bars = pl.concat([bars_1m.head(5), bars_1m.slice(4, 1).with_columns(volume=pl.lit(1.0))])
    assert check_duplicates(two_bars, ["symbol", "ts"]).failing_rows["row"].to_list() == [5]
    assert not check_duplicates(day_ticks.head(3), ["nope"]).passed


def test_duplicate_check_on_time_sorted_rows_finds_copies_anywhere_in_a_timestamp(day_ticks):
    """Time-sorted rows are compared only with rows sharing their timestamp (the fast path); that still
    finds a copy separated from its original by another tick of the same millisecond, and copies of rows
    whose timestamp is null (sorted first)."""
    head = day_ticks.head(6)
    other_tick = head.slice(5, 1).with_columns(bid=pl.col("bid") - 0.00001)
    ticks = pl.concat([head, other_tick, head.slice(5, 1)])  # row 7 copies row 5, row 6 sits between them
    assert ticks["ts"].is_sorted()
    assert check_duplicates(ticks).failing_rows["row"].to_list() == [7]
    assert check_duplicates(ticks, ["symbol", "ts"]).failing_rows["row"].to_list() == [6, 7]
    null_ts = head.head(1).with_columns(ts=pl.lit(None, dtype=head.schema["ts"]))
    with_nulls = pl.concat([null_ts, null_ts, ticks])
    assert with_nulls["ts"].is_sorted()
    assert check_duplicates(with_nulls).failing_rows["row"].to_list() == [1, 9]
    # not sorted (the exact comparison of every row): the same copies, numbered from the other end
    assert check_duplicates(with_nulls.reverse()).failing_rows["row"].to_list() == [2, 9]


def test_failing_rows_are_capped(day_ticks):
    outcome = check_prices(day_ticks.with_columns(bid=pl.lit(-1.0)))
    assert outcome.metadata["failing_rows"] == day_ticks.height
    assert outcome.failing_rows.height == MAX_FAILING_ROWS


def test_row_count_anomaly():
    history = [136_741, 129_880, 141_002, 133_517, 138_260]
    assert check_row_count_anomaly(135_000, history).passed
    low = check_row_count_anomaly(9_000, history)
    assert not low.passed and low.severity == "WARN" and "under 10% of the trailing median" in low.description
    high = check_row_count_anomaly(400_000, history)
    assert not high.passed and "outside the expected band" in high.description
    short = check_row_count_anomaly(5, [100, 120])
    assert short.passed and "need 3" in short.description
    steady = [1440, 1440, 1440, 1440]
    assert check_row_count_anomaly(1439, steady).passed  # the band's floor: a steady history tolerates 5%
    assert not check_row_count_anomaly(1300, steady).passed
    json.dumps(low.metadata)


def test_row_count_per_trading_hour_accepts_a_short_session():
    """A Friday that closes at 22:00 UTC has 22 trading hours: 22/24 of a full day's minute bars is in line
    per trading hour, while the same count judged as a whole day is flagged; a real shortfall still is."""
    full_days, hours = [1440, 1440, 1440, 1440], [24.0, 24.0, 24.0, 24.0]
    assert not check_row_count_anomaly(1320, full_days).passed
    friday = check_row_count_anomaly(1320, full_days, current_hours=22.0, trailing_hours=hours)
    assert friday.passed and "1,320 rows in 22 trading hours (60 per hour)" in friday.description
    assert friday.metadata["current_hours"] == 22.0 and friday.metadata["trailing_counts"] == full_days
    half = check_row_count_anomaly(660, full_days, current_hours=22.0, trailing_hours=hours)
    assert not half.passed and "outside the expected band 55..65 per trading hour" in half.description
    # the floor widens with the session's length: +8 % per hour on a 22-hour Friday (quiet hours dropped)
    # is in line, the same +8 % on a full day is not
    assert check_row_count_anomaly(1426, full_days, current_hours=22.0, trailing_hours=hours).passed
    assert not check_row_count_anomaly(1555, full_days, current_hours=24.0, trailing_hours=hours).passed
    # a short Sunday session in the history does not drag the median down either
    assert check_row_count_anomaly(1440, [1440, 120, 1440, 1440], current_hours=24.0,
                                   trailing_hours=[24.0, 2.0, 24.0, 24.0]).passed
    with pytest.raises(ValueError, match="trading hours"):
        check_row_count_anomaly(1440, full_days, current_hours=24.0, trailing_hours=[24.0, 24.0])
    json.dumps(friday.metadata)


# --- calendar ---------------------------------------------------------------------------------------


def test_fx_trading_hours_match_dukascopy_hourly_candles_for_february_2019(hourly_candles):
    """Hours in which Dukascopy's EURUSD candles have volume == the hours the calendar expects."""
    for offset in range(28):
        day = date(2019, 2, 1) + timedelta(days=offset)
        traded = (
            hourly_candles.filter(pl.col("ts").dt.date() == day, pl.col("volume") > 0)["ts"]
            .dt.hour()
            .to_list()
        )
        assert traded == expected_hours(SYMBOL, day), day


def test_fx_trading_days_match_dukascopy_daily_candles_for_2019(datafeed_dir):
    payload = (datafeed_dir / SYMBOL / "2019/BID_candles_day_1.bi5").read_bytes()
    days = bi5.decode_candles(payload, datetime(2019, 1, 1, tzinfo=UTC), decimal_factor(SYMBOL))
    assert days.height == 365
    for ts, volume in days.select("ts", "volume").iter_rows():
        assert (volume > 0) == bool(expected_hours(SYMBOL, ts.date())), ts.date()


def test_calendar_rules():
    assert market_of("EURUSD") is Market.FX and market_of("xauusd") is Market.FX
    assert market_of("BTCUSD") is Market.CRYPTO and market_of("AAPL") is Market.US_EQUITY
    assert market_of("USA500IDXUSD") is Market.UNKNOWN
    # US daylight saving moves the 17:00 New York roll from 22:00 to 21:00 UTC
    assert expected_hours("XAUUSD", date(2019, 7, 7)) == [21, 22, 23]
    assert expected_hours("XAUUSD", date(2019, 7, 5)) == list(range(21))
    assert expected_hours(SYMBOL, date(2019, 12, 25)) == [22, 23]  # Christmas session closed
    assert expected_hours("BTCUSD", date(2019, 2, 2)) == list(range(24))
    # the US session is 09:30-16:00 New York: 14:30-21:00 UTC in winter, 13:30-20:00 UTC in summer
    assert trading_sessions("AAPL", DAY) == [
        (datetime(2019, 2, 4, 14, 30, tzinfo=UTC), datetime(2019, 2, 4, 21, tzinfo=UTC))
    ]
    assert expected_hours("AAPL", DAY) == list(range(14, 21))
    assert expected_hours("AAPL", date(2019, 7, 8)) == list(range(13, 20))
    assert expected_hours("AAPL", date(2019, 2, 3)) == []
    with pytest.raises(ValueError, match="no trading-hours rule for USA500IDXUSD"):
        trading_sessions("USA500IDXUSD", DAY)

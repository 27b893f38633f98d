"""Tick normalisation and quarantine, on the real Dukascopy day EURUSD 2019-02-04 and on broken frames."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from lake_resources.catalog.instruments import decimal_factor
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.sources.dukascopy import bi5
from lake_resources.sources.dukascopy.bi5 import beyond_hour_records
from lake_resources.transforms import (
    QUARANTINE_SCHEMA,
    TICK_SCHEMA,
    FrameContractError,
    normalize_ticks,
    split_bad_ticks,
    split_hour_records,
)

DAY = date(2019, 2, 4)
SYMBOL = "EURUSD"
HOUR_NS = 3_600 * 10**9


@pytest.fixture(scope="module")
def hour_payloads(datafeed_dir) -> list[bytes]:
    return [(datafeed_dir / bi5.hour_path(SYMBOL, h)).read_bytes() for h in bi5.day_hours(DAY)]


@pytest.fixture(scope="module")
def raw_hours(hour_payloads) -> list[np.ndarray]:
    return [bi5.tick_points(p) for p in hour_payloads]


@pytest.fixture(scope="module")
def day_ticks(hour_payloads) -> pl.DataFrame:
    return normalize_ticks(bi5.decode_day_ticks(hour_payloads, DAY, decimal_factor(SYMBOL)), SYMBOL)


def _epoch_ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9


def test_normalized_real_day_follows_the_ticks_contract(day_ticks, raw_hours):
    assert day_ticks.schema == pl.Schema(TICK_SCHEMA)  # names, order and dtypes
    assert day_ticks.height == sum(len(r) for r in raw_hours) > 100_000
    assert day_ticks["symbol"].unique().to_list() == [SYMBOL]
    # every tick, against the raw records: ts = hour start + ms, price = points / decimal factor
    day_ns = _epoch_ns(datetime(2019, 2, 4, tzinfo=timezone.utc))
    raw = np.concatenate(raw_hours)
    expected_ns = np.concatenate(
        [day_ns + h * HOUR_NS + r["ms"].astype(np.int64) * 1_000_000 for h, r in enumerate(raw_hours)]
    )
    assert np.array_equal(day_ticks["ts"].dt.epoch("ns").to_numpy(), expected_ns)
    assert np.array_equal(day_ticks["bid"].to_numpy(), raw["bid"] / 100_000.0)
    assert np.array_equal(day_ticks["ask"].to_numpy(), raw["ask"] / 100_000.0)
    assert np.array_equal(day_ticks["bid_volume"].to_numpy(), raw["bid_volume"].astype(np.float32))
    bid, ask = day_ticks["bid"].to_numpy(), day_ticks["ask"].to_numpy()
    assert np.array_equal(day_ticks["mid"].to_numpy(), (bid + ask) / 2)
    assert np.array_equal(day_ticks["spread"].to_numpy(), ask - bid)
    assert day_ticks["ts"].is_sorted()


def test_normalize_sorts_stably_keeping_same_millisecond_ticks_in_file_order():
    base = datetime(2019, 2, 4, 10, tzinfo=timezone.utc)
    offsets_ms = [5, 1, 1, 1, 0]
    decoded = pl.DataFrame(
        {
            "ts": [base + timedelta(milliseconds=m) for m in offsets_ms],
            "bid": [1.5, 1.1, 1.2, 1.3, 1.0],
            "ask": [1.6, 1.2, 1.3, 1.4, 1.1],
            "bid_volume": [1.0] * 5,
            "ask_volume": [2.0] * 5,
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    out = normalize_ticks(decoded, "eurusd")
    assert out["bid"].to_list() == [1.0, 1.1, 1.2, 1.3, 1.5]  # the three 1 ms ticks keep their order
    assert out["symbol"].to_list() == ["EURUSD"] * 5
    assert out.schema == pl.Schema(TICK_SCHEMA)


def test_normalize_converts_other_zones_and_units_to_utc_ns():
    decoded = pl.DataFrame(
        {
            "ts": [datetime(2019, 2, 4, 5, 0, tzinfo=timezone.utc)],
            "bid": [1.0],
            "ask": [1.1],
            "bid_volume": [1.0],
            "ask_volume": [1.0],
        }
    ).with_columns(pl.col("ts").dt.convert_time_zone("America/New_York").dt.cast_time_unit("us"))
    out = normalize_ticks(decoded, SYMBOL)
    assert out["ts"].dtype == pl.Datetime("ns", "UTC")
    assert out["ts"].to_list() == [datetime(2019, 2, 4, 5, 0, tzinfo=timezone.utc)]


def test_normalize_refuses_bad_input_with_clear_errors(day_ticks):
    decoded = day_ticks.select("ts", "bid", "ask", "bid_volume", "ask_volume").head(3)
    with pytest.raises(FrameContractError, match=r"ticks of EURUSD: missing column\(s\) \['ask_volume'\]"):
        normalize_ticks(decoded.drop("ask_volume"), SYMBOL)
    with pytest.raises(FrameContractError, match="naive timestamps"):
        normalize_ticks(decoded.with_columns(pl.col("ts").dt.replace_time_zone(None)), SYMBOL)
    with pytest.raises(FrameContractError, match="must be a Datetime"):
        normalize_ticks(decoded.with_columns(pl.col("ts").dt.epoch("ms")), SYMBOL)
    with pytest.raises(FrameContractError, match="carries symbol"):
        normalize_ticks(decoded.with_columns(symbol=pl.lit("GBPUSD")), SYMBOL)
    with pytest.raises(LakeValidationError, match="invalid symbol"):
        normalize_ticks(decoded, "../EURUSD")


def test_real_day_has_nothing_to_quarantine(day_ticks):
    good, quarantine = split_bad_ticks(day_ticks, DAY)
    assert good.equals(day_ticks)
    assert quarantine.height == 0
    assert quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)


def test_split_bad_ticks_quarantines_each_kind_of_bad_row(day_ticks):
    sample = day_ticks.head(12)
    row = pl.int_range(pl.len())
    next_day = pl.lit(datetime(2019, 2, 5, 0, 0, 1, tzinfo=timezone.utc)).cast(pl.Datetime("ns", "UTC"))
    broken = sample.with_columns(
        bid=pl.when(row == 1)
        .then(0.0)
        .when(row == 3)
        .then(float("nan"))
        .when(row == 5)
        .then(pl.col("ask") + 0.0001)
        .otherwise(pl.col("bid")),
        ask=pl.when(row == 2).then(-1.0).when(row == 4).then(float("inf")).otherwise(pl.col("ask")),
        bid_volume=pl.when(row == 6).then(float("nan")).otherwise(pl.col("bid_volume")).cast(pl.Float32),
        ask_volume=pl.when(row == 7)
        .then(-1.0)
        .when(row == 10)
        .then(None)
        .otherwise(pl.col("ask_volume"))
        .cast(pl.Float32),
        ts=pl.when(row == 8).then(next_day).when(row == 9).then(None).otherwise(pl.col("ts")),
    ).with_row_index("row")  # extra columns pass through, so the row number tells rows apart
    good, quarantine = split_bad_ticks(broken, DAY)
    assert good.height + quarantine.height == broken.height  # nothing dropped
    assert good.equals(broken[[0, 11]])
    assert quarantine.columns == [*broken.columns, "reason"]
    assert dict(quarantine.select("row", "reason").iter_rows()) == {
        1: "bid is not a positive finite price",
        2: "ask is not a positive finite price",
        3: "bid is not a positive finite price",
        4: "ask is not a positive finite price",
        5: "crossed quote: bid > ask",
        6: "bid_volume is NaN, infinite, negative or null",
        7: "ask_volume is NaN, infinite, negative or null",
        8: "timestamp outside the UTC day 2019-02-04",
        9: "null timestamp",
        10: "ask_volume is NaN, infinite, negative or null",
    }
    # without a day, the next-day tick is not refused
    good, quarantine = split_bad_ticks(broken)
    assert good["row"].to_list() == [0, 8, 11]
    assert quarantine.height == 9


def test_a_row_breaking_several_rules_lists_them_all(day_ticks):
    broken = day_ticks.head(1).with_columns(bid=pl.lit(-1.0), bid_volume=pl.lit(-2.0, pl.Float32))
    _, quarantine = split_bad_ticks(broken)
    assert quarantine["reason"].to_list() == [
        "bid is not a positive finite price; bid_volume is NaN, infinite, negative or null"
    ]


def test_real_hour_files_have_no_record_beyond_the_hour(raw_hours):
    assert all(beyond_hour_records(r).size == 0 for r in raw_hours)
    assert beyond_hour_records(bi5.tick_points(b"")).size == 0


def _crafted_hour() -> bytes:
    ms = np.array([0, 10, 3_599_999, 3_600_000, 4_000_000, 20], dtype=np.uint32)
    ask = np.array([114_545, 114_546, 114_547, 114_548, 114_549, 0], dtype=np.uint32)
    bid = ask - 2
    bid[5] = 114_540  # record 5: ask of 0 points
    vol = np.ones(6, dtype=np.float32)
    return bi5.encode_ticks(ms, ask, bid, vol, vol)


def test_records_beyond_the_hour_are_flagged():
    recs = bi5.tick_points(_crafted_hour())
    assert beyond_hour_records(recs).tolist() == [3, 4]


def test_split_hour_records_quarantines_beyond_hour_and_bad_records_naming_the_file():
    recs = bi5.tick_points(_crafted_hour())
    hour = datetime(2019, 2, 4, 13, tzinfo=timezone.utc)
    name = bi5.hour_path(SYMBOL, hour)
    good, quarantine = split_hour_records(recs, hour, decimal_factor(SYMBOL), SYMBOL, name=name)
    assert good.schema == pl.Schema(TICK_SCHEMA)
    assert quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert good["ts"].to_list() == [
        hour,
        hour + timedelta(milliseconds=10),
        hour + timedelta(milliseconds=3_599_999),
    ]
    beyond = f"timestamp beyond the hour in {name} (ms offset >= 3600000)"
    assert quarantine.select("ts", "reason").rows() == [
        (hour + timedelta(milliseconds=20), "ask is not a positive finite price"),
        (hour + timedelta(milliseconds=3_600_000), beyond),
        (hour + timedelta(milliseconds=4_000_000), beyond),
    ]


def test_split_hour_records_on_a_real_hour_equals_decoding_it(hour_payloads):
    hour = bi5.day_hours(DAY)[7]
    recs = bi5.tick_points(hour_payloads[7])
    good, quarantine = split_hour_records(recs, hour, decimal_factor(SYMBOL), SYMBOL, name="07h_ticks.bi5")
    assert quarantine.height == 0
    assert good.equals(
        normalize_ticks(bi5.decode_ticks(hour_payloads[7], hour, decimal_factor(SYMBOL)), SYMBOL)
    )


def test_split_hour_records_refuses_a_naive_or_unaligned_hour():
    recs = bi5.tick_points(_crafted_hour())
    with pytest.raises(FrameContractError, match="timezone-aware"):
        split_hour_records(recs, datetime(2019, 2, 4, 13), 100_000, SYMBOL, name="x.bi5")
    with pytest.raises(FrameContractError, match="not the start of an hour"):
        split_hour_records(
            recs, datetime(2019, 2, 4, 13, 5, tzinfo=timezone.utc), 100_000, SYMBOL, name="x.bi5"
        )


def test_day_decoder_in_threads_equals_one_thread_and_reports_each_bad_hour(hour_payloads, raw_hours):
    """Hours are decompressed and converted in worker threads, largest first: the frame and the
    problems must not depend on the thread count, rows stay in hour order, bad hours are named."""
    hours = list(hour_payloads)
    hours[3] = hours[3][: len(hours[3]) // 2]  # truncated file: the whole hour is set aside
    hours[13] = _crafted_hour()  # two records beyond the hour
    hours[20] = b""  # an empty hour
    names = [f"h{h:02d}.bi5" for h in range(24)]
    one, problems_one = bi5.decode_day_ticks_checked(hours, DAY, decimal_factor(SYMBOL), names=names, threads=1)
    two, problems_two = bi5.decode_day_ticks_checked(hours, DAY, decimal_factor(SYMBOL), names=names, threads=2)
    assert two.equals(one)
    assert problems_two == problems_one
    assert [(p.hour, p.name, p.rejected_records) for p in problems_one] == [(3, "h03.bi5", None), (13, "h13.bi5", 2)]
    assert problems_one[0].message.startswith("h03.bi5: ") and "beyond the hour" in problems_one[1].message
    # the rows: every kept hour's records in hour order, the crafted hour without its two bad records
    kept = {h: raw_hours[h] for h in range(24) if h not in (3, 13, 20)}
    kept[13] = np.delete(bi5.tick_points(hours[13]), [3, 4])
    day_ns = _epoch_ns(datetime(2019, 2, 4, tzinfo=timezone.utc))
    expected_ns = np.concatenate([day_ns + h * HOUR_NS + kept[h]["ms"].astype(np.int64) * 1_000_000 for h in sorted(kept)])
    assert np.array_equal(one["ts"].dt.epoch("ns").to_numpy(), expected_ns)
    expected_bid = np.concatenate([kept[h]["bid"] for h in sorted(kept)]) / 100_000.0
    assert np.array_equal(one["bid"].to_numpy(), expected_bid)

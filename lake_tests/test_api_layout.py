"""The generator's second layout: the same ticks as its BI5 files in the JSON data API layout, with the
vendor's candles computed from them, so the demo and the tests can run either feed."""

from __future__ import annotations

from datetime import date, datetime, timezone

from lake_resources.generate import generate
from lake_resources.sources.dukascopy import api_codec as codec
from lake_resources.sources.dukascopy import bi5, ingest
from lake_resources.sources.dukascopy.api import DukascopyApiSource
from lake_resources.sources.dukascopy.candles import candles_frame, compare_bars
from lake_resources.transforms.bars import minute_bars, rollup

FRI, SAT = date(2019, 2, 8), date(2019, 2, 9)


def test_generated_api_layout_holds_the_bi5_ticks_and_matching_candles(tmp_path):
    summary = generate(tmp_path, ["EURUSD", "BTCUSD"], FRI, SAT, seed=4, ticks_per_day=3000)
    api = DukascopyApiSource(tmp_path / "dukascopy-api")
    for symbol, factor in (("EURUSD", 100000), ("BTCUSD", 10)):
        for day in (FRI, SAT):
            hours = [(tmp_path / "dukascopy" / bi5.hour_path(symbol, h)).read_bytes() for h in bi5.day_hours(day)]
            fetched = api.fetch_day(symbol, day)
            from_api, q = ingest.ticks_from_payloads(symbol, day, [f.payload for f in fetched],
                                                     [f.path for f in fetched], feeds=["api"] * 24)
            assert q.height == 0
            from_bi5, _ = ingest.ticks_from_payloads(symbol, day, hours, [f.path for f in fetched])
            assert from_api.height == summary.ticks[(symbol, day)]
            assert from_api.height > 0 or (symbol, day) == ("EURUSD", SAT)  # FX is closed on Saturday
            assert from_api.equals(from_bi5)
            # closed hours are served as the empty form, not as missing
            statuses = {f.hour.hour: f.status for f in fetched}
            assert set(statuses.values()) <= {"present", "empty"}
            if symbol == "EURUSD" and day == SAT:
                assert set(statuses.values()) == {"empty"}
            sides = {s.lower(): codec.decode_candles(api.fetch_candles(symbol, "minute", s, day).payload)
                     for s in ("BID", "ASK")}
            if not from_api.height:
                continue
            bars = minute_bars(from_api)
            assert compare_bars(bars, candles_frame(symbol, day, sides), 1 / factor).passed
            hourly = {s.lower(): codec.decode_candles(api.fetch_candles(symbol, "hour", s, day).payload)
                      for s in ("BID", "ASK")}
            result = compare_bars(rollup(bars, "1h"), candles_frame(symbol, day, hourly), 1 / factor)
            assert result.passed and result.compared == bars["ts"].dt.truncate("1h").n_unique()
    daily = codec.decode_candles(api.fetch_candles("BTCUSD", "day", "BID", FRI).payload)
    assert daily["ts"].to_list() == [datetime(2019, 2, 8, tzinfo=timezone.utc), datetime(2019, 2, 9, tzinfo=timezone.utc)]

"""The Dukascopy JSON data API feed: decoder (golden, against the real fixtures), the same hour through
both feeds, quarantine of malformed responses, and the source against a loopback server with faults."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from lake_resources.sources.dukascopy import api_codec as codec
from lake_resources.sources.dukascopy import bi5, ingest
from lake_resources.sources.dukascopy.api import DukascopyApiSource
from lake_resources.sources.dukascopy.datafeed import SourceError
from lake_tests.conftest import API_FIXTURES

DAY = date(2019, 2, 4)


def _fixture(name: str) -> bytes:
    return (API_FIXTURES / name).read_bytes()


# ------------------------------------------------------------------------------------------ decoder
def test_golden_decode_of_the_api_tick_fixture():
    raw = json.loads(_fixture("ticks-EUR-USD-2026-7-13-12.json"))
    ticks = codec.decode_ticks(_fixture("ticks-EUR-USD-2026-7-13-12.json"))
    assert ticks.columns == ["ts", "bid", "ask", "bid_volume", "ask_volume"]
    assert ticks.schema["ts"] == pl.Datetime("ns", "UTC") and ticks.schema["bid_volume"] == pl.Float32
    assert ticks.height == len(raw["times"]) == 3551
    first, last = ticks.row(0, named=True), ticks.row(-1, named=True)
    assert first["ts"] == datetime(2026, 7, 13, 12, 0, 0, 93000, tzinfo=timezone.utc)
    assert (first["bid"], first["ask"]) == (1.14273, 1.14277)  # the bases; first deltas are 0
    assert (first["bid_volume"], first["ask_volume"]) == (np.float32(2.7), np.float32(1.8))  # units / 1e6
    assert last["ts"] == datetime(2026, 7, 13, 12, 59, 57, 150000, tzinfo=timezone.utc)
    assert (last["bid"], last["ask"]) == (1.14309, 1.1431)
    # every price is an exact 5-decimal number, as BI5 points / 100000 gives
    bid = ticks["bid"].to_numpy()
    assert (np.rint(bid * 100000) / 100000 == bid).all()
    assert (ticks["ts"].diff().drop_nulls() >= timedelta(0)).all()


def test_golden_decode_of_the_api_candle_fixtures():
    candles = codec.decode_candles(_fixture("candles-minute-EUR-USD-BID-2026-7-10.json"))
    assert candles.height == 1258
    assert candles.row(0, named=True) | {"multiplier": None} == {
        "ts": datetime(2026, 7, 10, tzinfo=timezone.utc), "open": 1.14331, "high": 1.14334, "low": 1.14322,
        "close": 1.14324, "volume": 197.1, "multiplier": None}
    assert candles.row(-1, named=True)["ts"] == datetime(2026, 7, 10, 20, 59, tzinfo=timezone.utc)
    assert candles.select((pl.col("high") >= pl.max_horizontal("open", "close"))
                          & (pl.col("low") <= pl.min_horizontal("open", "close"))).to_series().all()
    empty = codec.decode_candles(_fixture("candles-minute-EUR-USD-BID-2026-7-11-empty.json"))
    assert empty.height == 0 and "open" in empty.columns


def _api_day(datafeed_dir) -> list[bytes]:
    from lake_resources.sources.dukascopy.api_layout import bi5_hour_json

    return [bi5_hour_json((datafeed_dir / bi5.hour_path("EURUSD", h)).read_bytes(), h, 1e-05)
            for h in bi5.day_hours(DAY)]


def test_same_day_through_both_feeds_gives_identical_ts_bid_ask(datafeed_dir):
    bi5_hours = [(datafeed_dir / bi5.hour_path("EURUSD", h)).read_bytes() for h in bi5.day_hours(DAY)]
    names = [f"h{h}" for h in range(24)]
    from_bi5, q1 = ingest.ticks_from_payloads("EURUSD", DAY, bi5_hours, names)
    from_api, q2 = ingest.ticks_from_payloads("EURUSD", DAY, _api_day(datafeed_dir), names, feeds=["api"] * 24)
    assert q1.height == q2.height == 0
    assert from_api.height == from_bi5.height == 136741
    assert from_api.select("ts", "bid", "ask").equals(from_bi5.select("ts", "bid", "ask"))
    assert from_api.schema == from_bi5.schema  # same table, same columns and units
    # volumes agree to float32 (units -> millions)
    assert (from_api["bid_volume"] == from_bi5["bid_volume"]).all()


def test_malformed_api_hours_are_quarantined_with_the_reason_while_the_rest_proceed(datafeed_dir):
    hours = _api_day(datafeed_dir)
    good_rows = ingest.ticks_from_payloads("EURUSD", DAY, hours, [f"h{h}" for h in range(24)], feeds=["api"] * 24)[0]

    def edit(h: int, change) -> None:
        obj = json.loads(hours[h])
        change(obj)
        hours[h] = json.dumps(obj).encode()

    edit(1, lambda o: o["asks"].pop())  # column lengths differ
    edit(2, lambda o: o["bidVolumes"].__setitem__(3, float("nan")))  # non-finite (json writes NaN)
    edit(3, lambda o: o["times"].__setitem__(5, -7))  # negative time delta
    edit(4, lambda o: o.__setitem__("bid", None))  # missing base price
    hours[5] = hours[5][: len(hours[5]) // 2]  # truncated JSON
    names = [f"ticks/EUR-USD/2019/2/4/{h}" for h in range(24)]
    ticks, quarantine = ingest.ticks_from_payloads("EURUSD", DAY, hours, names, feeds=["api"] * 24)
    reasons = dict(zip(quarantine["source"], quarantine["reason"]))
    assert set(reasons) == {names[h] for h in (1, 2, 3, 4, 5)}
    assert "column lengths differ" in reasons[names[1]]
    assert "non-finite" in reasons[names[2]]
    assert "negative time delta" in reasons[names[3]]
    assert "missing base price" in reasons[names[4]]
    assert "not valid JSON" in reasons[names[5]]
    bad_hours = pl.col("ts").dt.hour().is_in([1, 2, 3, 4, 5])
    assert ticks.equals(good_rows.filter(~bad_hours))  # every other hour intact


# ------------------------------------------------------------------------------------------ source
def _source(server, tmp_path, **kw) -> DukascopyApiSource:
    opts = dict(cache_dir=tmp_path / "cache", retries=3, backoff=0.01, empty_pause=0.01, timeout=5)
    return DukascopyApiSource(server.base, **(opts | kw))


def test_api_source_day_with_faults_429_5xx_timeout_truncated_and_false_empty(api_server, tmp_path, datafeed_dir):
    p = lambda h: f"ticks/EUR-USD/2019/2/4/{h}"  # noqa: E731
    api_server.faults = {
        p(1): [("status", 429, {"Retry-After": "1"})],
        p(2): [("status", 503), ("status", 500)],
        p(3): [("sleep", 2.0)],
        p(4): [("truncate",)],
        p(5): [("empty",)],  # empty on the first ask, real on the second
    }
    with _source(api_server, tmp_path, timeout=0.5) as source:
        fetched = source.fetch_day("EURUSD", DAY)
    assert [f.status for f in fetched] == ["present"] * 24
    assert all(f.feed == "api" for f in fetched)
    assert {h: api_server.count(p(h)) for h in range(1, 6)} == {1: 2, 2: 3, 3: 2, 4: 2, 5: 2}
    # the 429's Retry-After was waited (a lower bound only: sleeping never ends early)
    times = [t for path, t in api_server.requests if path == p(1)]
    assert times[1] - times[0] >= 1.0
    ticks, quarantine = ingest.ticks_from_payloads(
        "EURUSD", DAY, [f.payload for f in fetched], [f.path for f in fetched], feeds=["api"] * 24)
    assert quarantine.height == 0 and ticks.height == 136741


def test_api_source_gives_up_on_a_persistent_5xx_and_names_the_url(api_server, tmp_path):
    api_server.faults = {"ticks/EUR-USD/2019/2/4/7": [("status", 502)] * 4}
    with _source(api_server, tmp_path) as source, pytest.raises(SourceError, match=r"ticks/EUR-USD/2019/2/4/7.*HTTP 502"):
        source.fetch_hour("EURUSD", datetime(2019, 2, 4, 7, tzinfo=timezone.utc))


def test_api_source_empty_in_trading_hours_is_asked_again_then_recorded_empty_not_cached(api_server, tmp_path):
    hour = datetime(2019, 2, 4, 9, tzinfo=timezone.utc)
    path = "ticks/EUR-USD/2019/2/4/9"
    api_server.faults = {path: [("empty",)] * 3}
    now = lambda: datetime(2019, 2, 4, 12, tzinfo=timezone.utc)  # noqa: E731 - the hour is done, not settled
    with _source(api_server, tmp_path, empty_retries=2, now=now) as source:
        first = source.fetch_hour("EURUSD", hour, trading=True)
        assert first.status == "empty" and api_server.count(path) == 3  # asked 1 + 2 times
        again = source.fetch_hour("EURUSD", hour, trading=True)  # not cached as final: asked again, real now
        assert again.status == "present" and not again.from_cache and api_server.count(path) == 4
        cached = source.fetch_hour("EURUSD", hour, trading=True)
        assert cached.from_cache and cached.payload == again.payload and api_server.count(path) == 4
    # outside trading hours an empty answer is believed at once
    api_server.faults = {"ticks/EUR-USD/2019/2/4/10": [("empty",)]}
    with _source(api_server, tmp_path / "b", now=now) as source:
        assert source.fetch_hour("EURUSD", hour.replace(hour=10)).status == "empty"
    assert api_server.count("ticks/EUR-USD/2019/2/4/10") == 1


def test_api_source_404_is_missing_and_current_hour_uses_from_and_is_never_cached(api_server, tmp_path):
    hour = datetime(2019, 2, 4, 13, tzinfo=timezone.utc)
    now = lambda: datetime(2019, 2, 4, 13, 40, tzinfo=timezone.utc)  # noqa: E731
    from_path = f"ticks/EUR-USD?from={int(hour.timestamp() * 1000)}"
    with _source(api_server, tmp_path, now=now) as source:
        assert source.fetch_hour("EURUSD", hour.replace(day=5)).status == "missing"  # 404 (no such file)
        future = source.fetch_hour("EURUSD", hour + timedelta(hours=1))
        assert future.status == "missing" and "not yet" in future.source
        for n in (1, 2):
            current = source.fetch_hour("EURUSD", hour)
            assert current.status == "present" and not current.from_cache
            assert api_server.count(from_path) == n  # re-read on every run
        assert api_server.count("ticks/EUR-USD/2019/2/13/15") == 0  # the future hour was never asked
        # a completed hour is cached: the second ask costs no request
        done = datetime(2019, 2, 4, 11, tzinfo=timezone.utc)
        source.fetch_hour("EURUSD", done)
        assert source.fetch_hour("EURUSD", done).from_cache
        assert api_server.count("ticks/EUR-USD/2019/2/4/11") == 1


def test_api_source_reads_a_local_directory_laid_out_like_the_urls(api_layout_dir):
    source = DukascopyApiSource(api_layout_dir.as_uri())
    fetched = source.fetch_day("EURUSD", DAY)
    assert [f.status for f in fetched] == ["present"] * 24
    candles = source.fetch_candles("EURUSD", "minute", "BID", date(2026, 7, 11))
    assert candles.status == "empty"


def test_todays_partition_completed_hours_from_cache_current_hour_reread_rerun_fetches_only_new(
        api_server, tmp_path):
    """A symbol-day fetched during the day, twice: the second run asks only for what is new."""
    from lake_resources.settings import LakeSettings
    from lake_resources.storage import Lake

    lake = Lake(LakeSettings(home=tmp_path / "lake"))
    clock = {"now": datetime(2019, 2, 4, 13, 40, tzinfo=timezone.utc)}
    ms = lambda h: int(datetime(2019, 2, 4, h, tzinfo=timezone.utc).timestamp() * 1000)  # noqa: E731
    with _source(api_server, tmp_path, now=lambda: clock["now"]) as source:
        first = ingest.fetch_raw_day(lake, source, "EURUSD", DAY)
        status = dict(zip(first["hour"], first["status"]))
        assert [status[h] for h in range(14)] == ["present"] * 14 and {status[h] for h in range(14, 24)} == {"missing"}
        assert api_server.count(f"ticks/EUR-USD?from={ms(13)}") == 1  # the current hour, in the ?from= form
        assert api_server.count("ticks/EUR-USD/2019/2/4/14") == 0  # the future is never asked
        asked_before = len(api_server.requests)
        clock["now"] = datetime(2019, 2, 4, 15, 10, tzinfo=timezone.utc)
        second = ingest.fetch_raw_day(lake, source, "EURUSD", DAY)
    new = sorted(p for p, _ in api_server.requests[asked_before:])
    # hours 0-12 came from the cache; 13 and 14 are complete now; 15 is current; 16-23 are future
    assert new == sorted(["ticks/EUR-USD/2019/2/4/13", "ticks/EUR-USD/2019/2/4/14", f"ticks/EUR-USD?from={ms(15)}"])
    assert dict(zip(second["hour"], second["status"]))[15] == "present"
    ticks, _ = ingest.ticks_from_raw(lake, "EURUSD", DAY, second)
    assert ticks["ts"].max() < datetime(2019, 2, 4, 16, tzinfo=timezone.utc)
    assert ticks.filter(pl.col("ts").dt.hour() == 15).height > 0


def test_raw_hours_stored_before_the_feed_column_read_as_datafeed_and_both_feeds_mix_in_a_day(tmp_path, datafeed_dir,
                                                                                              api_layout_dir):
    from lake_resources.settings import LakeSettings
    from lake_resources.sources.dukascopy.datafeed import DukascopySource
    from lake_resources.storage import Lake

    lake = Lake(LakeSettings(home=tmp_path / "lake"))
    bi5_hours = ingest.fetch_raw_day(lake, DukascopySource(datafeed_dir.as_uri()), "EURUSD", DAY)
    legacy, _ = ingest.ticks_from_raw(lake, "EURUSD", DAY, bi5_hours.drop("feed"))  # a partition from before
    assert legacy.height == 136741
    # hours 0-11 from BI5, 12-23 from the API (a mirror switched mid-day): one day, one frame in time order
    api_hours = ingest.fetch_raw_day(lake, DukascopyApiSource(api_layout_dir.as_uri()), "EURUSD", DAY)
    mixed_hours = pl.concat([bi5_hours.filter(pl.col("hour") < 12), api_hours.filter(pl.col("hour") >= 12)])
    mixed, quarantine = ingest.ticks_from_raw(lake, "EURUSD", DAY, mixed_hours)
    assert quarantine.height == 0 and mixed.equals(legacy)


def test_api_source_asks_at_most_max_concurrency_at_once_in_paced_batches(api_server, tmp_path):
    api_server.faults = {f"ticks/EUR-USD/2019/2/4/{h}": [("sleep", 0.2)] for h in range(24)}
    with _source(api_server, tmp_path, max_concurrency=3, batch_pause=0.3) as source:
        assert [f.status for f in source.fetch_day("EURUSD", DAY)] == ["present"] * 24
    assert api_server.max_in_flight == 3  # every request was slow, so batches of 3 filled up, and no more
    starts = sorted(t for _, t in api_server.requests)
    batches = [starts[i:i + 3] for i in range(0, 24, 3)]
    # a pause between batches (a lower bound: sleeping never ends early)
    assert all(b[0] - a[-1] >= 0.3 for a, b in zip(batches, batches[1:]))


def test_api_credentials_in_the_base_are_sent_but_never_shown(api_server, tmp_path):
    base = api_server.base.replace("http://", "http://lake:s3cr%40t@")
    path = "ticks/EUR-USD/2019/2/4/8"
    api_server.faults = {path: [("status", 503)] * 2}
    with DukascopyApiSource(base, retries=1, backoff=0.01) as source:
        assert "s3cr" not in source.base and "s3cr" not in repr(source)
        with pytest.raises(SourceError) as failed:
            source.fetch_hour("EURUSD", datetime(2019, 2, 4, 8, tzinfo=timezone.utc))
        assert "s3cr" not in str(failed.value) and "HTTP 503" in str(failed.value)
        fetched = source.fetch_hour("EURUSD", datetime(2019, 2, 4, 9, tzinfo=timezone.utc))
        assert fetched.status == "present" and "s3cr" not in fetched.source
    import base64

    assert set(api_server.authorization) == {"Basic " + base64.b64encode(b"lake:s3cr@t").decode()}

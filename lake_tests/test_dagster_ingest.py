"""Vendor JSON pulls through Dagster, in-process, on a real lake: landing -> raw_vendor (zstd raw zone)
-> bars_1m (uniform view) / option_greeks / headlines, with schema drift kept and a corrupt pull
quarantined while the rest proceeds; and the landing sensor (run requests, run keys, cursor, dynamic
symbols), locally and on the real S3 server."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lake_assets.definitions import defs
from lake_assets.ingest.sensors import FEED_ASSETS, vendor_landing_sensor
from lake_assets.ingest.vendor import ZSTD_MAGIC
from lake_assets.partitions import date_symbol_partitions, discovered_symbols
from lake_resources.catalog.instruments import catalogue
from lake_resources.client import LakeClient
from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource
from lake_resources.generate import DEFAULT_VENDOR, generate
from lake_resources.sources.vendor import decompress_pull, make_pull, pull_path, write_pull
from lake_resources.storage import Lake
from lake_resources.storage.s3 import s3fs_kwargs

DAY = "2019-02-04"
KEY = f"{DAY}|AAPL"
PART = (("symbol", "AAPL"), ("date", DAY))
VENDOR_GRAPH = ["raw_vendor", "bars_1m", "bars_1d", "option_greeks", "headlines"]
CONFIGURED = date_symbol_partitions.get_partitions_def_for_dimension("symbol").get_partition_keys()


def resources(lake: LakeResource) -> dict:
    return {"lake": lake, "io_manager": LakeIOManager(lake=lake),
            "dukascopy": DukascopyResource(feed="datafeed", url="file:///nonexistent-datafeed", lake=lake)}


def materialize(lake: LakeResource, selection, key: str = KEY):
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=selection,
                          tags=date_symbol_partitions.get_tags_for_partition_key(key),
                          resources=resources(lake), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def landing_records(landing: Path, feed: str, symbol: str = "AAPL", day: str = DAY) -> tuple[str, list[dict]]:
    files = sorted((landing / "vendor" / DEFAULT_VENDOR / feed / day / symbol).glob("*.json"))
    assert len(files) == 1, files
    return files[0].stem, json.loads(files[0].read_bytes())["records"]


@pytest.fixture
def vendor_lake(tmp_path):
    """Generated AAPL pulls for one Monday, plus a schema-drifted later bars pull, a corrupt greeks
    pull and a headlines pull with one bad record, all in the local landing area."""
    lake = LakeResource(home=str(tmp_path / "lake"))
    landing = lake.settings().landing_root
    generate(landing, ["AAPL"], DAY, DAY, seed=11)
    bars_id, bars = landing_records(landing, "bars")
    # a later pull re-sends the first 10 minutes with a field the parser does not know
    drifted = [dict(r, exchange="XNAS") for r in bars[:10]]
    write_pull(landing, make_pull(DEFAULT_VENDOR, "bars", "AAPL", DAY, datetime(2019, 2, 4, 22, 0, tzinfo=timezone.utc),
                                  drifted), vendor=DEFAULT_VENDOR, feed="bars", symbol="AAPL", day=DAY,
               pull_id="20190204T220000Z", compressed=True)
    corrupt = landing / pull_path(DEFAULT_VENDOR, "greeks", "AAPL", DAY, "20190204T230000Z")
    corrupt.write_bytes(b'{"vendor": "sample", "feed": "greeks", "symbol": "AAPL", "records": [{"ts": ')
    news_id, news = landing_records(landing, "headlines")
    news[1]["headline"] = "   "  # a blank headline: this record alone is refused
    write_pull(landing, make_pull(DEFAULT_VENDOR, "headlines", "AAPL", DAY, datetime(2019, 2, 5, 0, 10, tzinfo=timezone.utc),
                                  news), vendor=DEFAULT_VENDOR, feed="headlines", symbol="AAPL", day=DAY, pull_id=news_id)
    return lake, landing, {"bars": bars, "drifted": drifted, "news": news, "corrupt": corrupt, "bars_id": bars_id}


def test_vendor_pulls_to_canonical_tables(vendor_lake):
    lake, landing, data = vendor_lake
    result = materialize(lake, VENDOR_GRAPH)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.asset_key.to_user_string() for e in evaluations} == set(VENDOR_GRAPH)
    assert [(e.asset_key.to_user_string(), e.check_name, e.description) for e in evaluations if not e.passed] == []

    store = Lake(lake.settings())
    # every pull is kept zstd-compressed in the raw zone, byte-identical once decompressed
    index = store.read_partition("raw_vendor", PART)
    assert sorted(index["feed"].to_list()) == ["bars", "bars", "greeks", "greeks", "headlines"]
    for row in index.iter_rows(named=True):
        stored = store.raw.get_file(row["raw_file"])
        assert stored.startswith(ZSTD_MAGIC)
        source = Path(row["location"].removeprefix("file://")).read_bytes()
        assert decompress_pull(stored) == (decompress_pull(source) if source.startswith(ZSTD_MAGIC) else source)
    corrupt = index.filter(pl.col("pull_id") == "20190204T230000Z").row(0, named=True)
    assert corrupt["status"] == "quarantined" and corrupt["reason"].startswith("invalid JSON")

    # the corrupt pull and the blank headline are in quarantine, saying why and where
    quarantine = store.read_partition("quarantine", (("stage", "vendor"), ("symbol", "AAPL"), ("date", DAY)))
    assert quarantine.height == 2
    whole = quarantine.filter(pl.col("record").is_null()).row(0, named=True)
    assert whole["source"].endswith(str(data["corrupt"])) and "invalid JSON" in whole["reason"]
    record = quarantine.filter(pl.col("record").is_not_null()).row(0, named=True)
    assert record["record"] == 1 and record["reason"] == "empty headline"

    client = LakeClient(lake=store)
    bars = client.read("bars_1m", symbols="AAPL")
    assert bars.height == len(data["bars"])
    assert bars["ts"][0] == datetime.fromisoformat(data["bars"][0]["ts"].replace("Z", "+00:00"))
    # uniform view: core OHLCV from the vendor, tick-only columns null, vendor extras kept
    assert bars["close"].to_list() == [r["close"] for r in data["bars"]]
    assert bars["volume"].to_list() == [float(r["volume"]) for r in data["bars"]]
    assert bars["bid_open"].null_count() == bars.height and bars["tick_count"].null_count() == bars.height
    assert bars["vwap"].to_list() == [r["vwap"] for r in data["bars"]]
    # schema drift: the later pull's unknown field is a column, its rows won over the first pull's
    exchange = client.sql("select exchange, count(*) as n from bars_1m where symbol = 'AAPL' group by 1 order by 1")
    assert exchange.to_dicts() == [{"exchange": "XNAS", "n": 10}, {"exchange": None, "n": len(data["bars"]) - 10}]
    assert bars.filter(pl.col("exchange").is_not_null())["pull_id"].unique().to_list() == ["20190204T220000Z"]

    daily = client.read("bars_1d", symbols="AAPL").row(0, named=True)
    assert daily["open"] == data["bars"][0]["open"]
    assert daily["high"] == max(r["high"] for r in data["bars"])
    assert daily["volume"] == sum(r["volume"] for r in data["bars"])

    greeks = client.read("option_greeks", symbols="AAPL")
    assert greeks.height == len(json.loads((landing / pull_path(DEFAULT_VENDOR, "greeks", "AAPL", DAY, "20190204T210500Z"))
                                           .read_bytes())["records"])
    assert set(greeks["right"].unique()) == {"C", "P"}
    news = client.read("headlines", symbols="AAPL")
    assert news.height == len(data["news"]) - 1
    assert "   " not in news["headline"].to_list()


def test_bars_1m_reads_vendor_pulls_through_when_raw_vendor_is_missing(vendor_lake):
    lake, _, data = vendor_lake
    result = materialize(lake, ["bars_1m"])
    assert result.success
    captured = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "raw_vendor"]
    assert [e.partition for e in captured] == [KEY]
    assert Lake(lake.settings()).read_partition("bars_1m", PART).height == len(data["bars"])


def test_failing_blocking_vendor_schema_stops_rollups(vendor_lake):
    """A vendor starts sending tick_count 0 (a contract column): bars_1m keeps it, its schema check
    fails and blocks, and no roll-up is built from the bad bars."""
    lake, landing, data = vendor_lake
    bad = [dict(r, tick_count=0) for r in data["bars"][:3]]
    write_pull(landing, make_pull(DEFAULT_VENDOR, "bars", "AAPL", DAY, datetime(2019, 2, 4, 23, 0, tzinfo=timezone.utc), bad),
               vendor=DEFAULT_VENDOR, feed="bars", symbol="AAPL", day=DAY, pull_id="20190204T230000Z")
    result = materialize(lake, ["raw_vendor", "bars_1m", "bars_5m", "bars_1h"])
    assert not result.success
    schema = next(e for e in result.get_asset_check_evaluations()
                  if e.asset_key.to_user_string() == "bars_1m" and e.check_name == "schema_valid")
    assert not schema.passed and schema.metadata["failure_count"].value == 3
    assert "tick_count greater_than_or_equal_to(1) x3" in schema.description
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {"raw_vendor", "bars_1m"}


# ------------------------------------------------------------------------------------------
# The landing sensor
# ------------------------------------------------------------------------------------------
def tick(lake: LakeResource, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": lake})
    return vendor_landing_sensor(context)


def test_sensor_requests_each_affected_partition_once(tmp_path):
    assert vendor_landing_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    lake = LakeResource(home=str(tmp_path / "lake"))
    landing = lake.settings().landing_root
    vendor_symbols = sorted(s for s, i in catalogue().items() if i.source == "vendor")
    known = [s for s in vendor_symbols if s in CONFIGURED][:2]
    unknown = next(s for s in vendor_symbols if s not in CONFIGURED)
    generate(landing, known, "2019-02-04", "2019-02-05")
    instance = dg.DagsterInstance.ephemeral()

    first = tick(lake, instance, None)
    expected = {f"{d}|{s}" for d in ("2019-02-04", "2019-02-05") for s in known}
    assert {r.partition_key for r in first.run_requests} == expected
    assert len(first.run_requests) == len(expected)
    for request in first.run_requests:  # new files of every feed: all the vendor datasets
        assert {k.to_user_string() for k in request.asset_selection} == {
            "raw_vendor", "bars_1m", "bars_5m", "bars_1h", "bars_1d", "option_greeks", "headlines"}
    # stable run keys: the same files give the same keys, so nothing could run twice
    again = tick(lake, instance, None)
    assert sorted(r.run_key for r in again.run_requests) == sorted(r.run_key for r in first.run_requests)

    second = tick(lake, instance, first.cursor)  # a new context from the stored cursor (a restart)
    assert second.run_requests == [] and second.cursor == first.cursor
    assert "no new or changed vendor files" in second.skip_reason.skip_message

    # a changed file: only its partition, only its feed's assets, under a new run key
    changed = landing / pull_path(DEFAULT_VENDOR, "headlines", known[0], "2019-02-05", "20190206T001000Z")
    changed.write_bytes(changed.read_bytes().replace(b'"records":[', b'"request":{"page":1},"records":['))
    third = tick(lake, instance, second.cursor)
    assert [r.partition_key for r in third.run_requests] == [f"2019-02-05|{known[0]}"]
    assert {k.to_user_string() for k in third.run_requests[0].asset_selection} == set(FEED_ASSETS["headlines"])
    old_key = next(r.run_key for r in first.run_requests if r.partition_key == f"2019-02-05|{known[0]}")
    assert third.run_requests[0].run_key != old_key
    assert tick(lake, instance, third.cursor).run_requests == []

    # a symbol outside LAKE_SYMBOLS: no run, but it joins the discovered_symbols partitions, once
    generate(landing, [unknown], "2019-02-04", "2019-02-04")
    fourth = tick(lake, instance, third.cursor)
    assert fourth.run_requests == []
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in fourth.dynamic_partitions_requests] == [
        (discovered_symbols.name, [unknown])]
    instance.add_dynamic_partitions(discovered_symbols.name, [unknown])  # what the daemon does with the request
    assert tick(lake, instance, fourth.cursor).dynamic_partitions_requests == []


def run_request(lake: LakeResource, instance: dg.DagsterInstance, request: dg.RunRequest):
    """Execute a sensor's run request as the daemon would: its partition, its asset selection."""
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=request.asset_selection,
                          tags={**request.tags, **date_symbol_partitions.get_tags_for_partition_key(request.partition_key)},
                          resources=resources(lake), instance=instance, raise_on_error=False)


def test_sensor_without_cursor_skips_what_raw_vendor_already_holds(tmp_path):
    """After the files were ingested, a sensor with no cursor (the first `lake ui` after `lake demo`, or a
    lost cursor) requests nothing, nor does a touched but unchanged file; a changed file requests exactly
    its partition and feed, under one run key, and nothing once that run is done."""
    lake = LakeResource(home=str(tmp_path / "lake"))
    landing = lake.settings().landing_root
    days = ("2019-02-04", "2019-02-05")
    generate(landing, ["AAPL"], days[0], days[-1], seed=11)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = tick(lake, instance, None)
        assert sorted(r.partition_key for r in first.run_requests) == [f"{d}|AAPL" for d in days]
        for request in first.run_requests:
            assert run_request(lake, instance, request).success

        fresh = tick(lake, instance, None)
        assert fresh.run_requests == []
        assert "2 already captured with identical content" in fresh.skip_reason.skip_message
        assert fresh.cursor == first.cursor  # the cursor is rebuilt: the next tick reads nothing

        bars = landing / pull_path(DEFAULT_VENDOR, "bars", "AAPL", days[0], "20190204T210200Z")
        stat = bars.stat()
        os.utime(bars, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5 * 10**9))  # re-delivered, same bytes
        touched = tick(lake, instance, fresh.cursor)
        assert touched.run_requests == [] and touched.cursor != fresh.cursor

        news = landing / pull_path(DEFAULT_VENDOR, "headlines", "AAPL", days[1], "20190206T001000Z")
        news.write_bytes(news.read_bytes().replace(b'"records":[', b'"request":{"page":1},"records":['))
        from_cursor, from_nothing = tick(lake, instance, touched.cursor), tick(lake, instance, None)
        for changed in (from_cursor, from_nothing):
            assert [r.partition_key for r in changed.run_requests] == [f"{days[1]}|AAPL"]
            assert {k.to_user_string() for k in changed.run_requests[0].asset_selection} == set(FEED_ASSETS["headlines"])
        assert from_cursor.run_requests[0].run_key == from_nothing.run_requests[0].run_key  # one run, even so
        assert tick(lake, instance, from_cursor.cursor).run_requests == []

        assert run_request(lake, instance, from_cursor.run_requests[0]).success
        assert tick(lake, instance, None).run_requests == []


def materialized(result) -> list[str]:
    return sorted(e.asset_key.to_user_string() for e in result.get_asset_materialization_events())


def test_sensor_without_cursor_requests_the_datasets_a_capture_left_behind(tmp_path):
    """raw_vendor holds the pulls but datasets of their feeds never ran (or ran before the capture of
    their feed's pulls): a sensor without cursor requests exactly those datasets, for exactly that
    partition, under one stable run key, without capturing raw_vendor again; once that run is done,
    nothing. The roll-ups come with bars_1m, whose blocking checks guard them."""
    lake = LakeResource(home=str(tmp_path / "lake"))
    landing = lake.settings().landing_root
    generate(landing, ["AAPL"], DAY, DAY, seed=11)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        [capture] = tick(lake, instance, None).run_requests
        # A run that captured the pulls and built bars_1m and headlines, then stopped (greeks, roll-ups never ran).
        partial = run_request(lake, instance, dg.RunRequest(
            run_key=None, partition_key=KEY, asset_selection=[dg.AssetKey(a) for a in ("raw_vendor", "bars_1m", "headlines")]))
        assert partial.success

        behind = tick(lake, instance, None)
        [request] = behind.run_requests
        assert request.partition_key == KEY
        assert [k.to_user_string() for k in request.asset_selection] == [
            "bars_1m", "bars_5m", "bars_1h", "bars_1d", "option_greeks"]
        assert request.run_key != capture.run_key  # a key of its own: the capture's run is not dropped as a repeat
        assert tick(lake, instance, None).run_requests[0].run_key == request.run_key  # stable: it runs once
        assert tick(lake, instance, behind.cursor).run_requests == []  # the cursor records it as requested

        done = run_request(lake, instance, request)
        assert done.success
        assert materialized(done) == ["bars_1d", "bars_1h", "bars_1m", "bars_5m", "option_greeks"]  # raw_vendor read, not re-captured
        store = Lake(lake.settings())
        assert store.read_partition("option_greeks", PART).height > 0 and store.read_partition("bars_1d", PART).height == 1
        after = tick(lake, instance, None)
        assert after.run_requests == [] and "1 already captured with identical content" in after.skip_reason.skip_message

        # A changed greeks pull captured by a run whose option_greeks step never ran: only option_greeks
        # is behind (the bars and headlines pulls are the ones their datasets were built from).
        greeks = landing / pull_path(DEFAULT_VENDOR, "greeks", "AAPL", DAY, "20190204T210500Z")
        greeks.write_bytes(greeks.read_bytes().replace(b'"records":[', b'"request":{"page":1},"records":['))
        assert run_request(lake, instance, dg.RunRequest(run_key=None, partition_key=KEY,
                                                         asset_selection=[dg.AssetKey("raw_vendor")])).success
        for cursor in (None, after.cursor):
            [request] = tick(lake, instance, cursor).run_requests
            assert (request.partition_key, [k.to_user_string() for k in request.asset_selection]) == (KEY, ["option_greeks"])
        assert materialized(run_request(lake, instance, request)) == ["option_greeks"]
        assert tick(lake, instance, None).run_requests == []


@pytest.mark.s3
def test_s3_landing_is_watched_and_ingested(s3_lake_settings):
    settings = s3_lake_settings
    lake = LakeResource(home=str(settings.home), s3_endpoint=settings.s3_endpoint, s3_bucket=settings.s3_bucket,
                        s3_prefix=settings.s3_prefix, aws_access_key_id=settings.aws_access_key_id,
                        aws_secret_access_key=settings.aws_secret_access_key, s3_verify="false")
    lake.lake()  # creates the bucket
    records = [{"ts": f"2019-02-04T15:{m:02d}:00Z", "open": 100.0 + m, "high": 101.0 + m, "low": 99.5 + m,
                "close": 100.5 + m, "volume": 1000 + m} for m in range(5)]
    location = write_pull(settings.shared_landing_location, make_pull("s3vendor", "bars", "AAPL", DAY,
                          datetime(2019, 2, 4, 21, 0, tzinfo=timezone.utc), records),
                          vendor="s3vendor", feed="bars", symbol="AAPL", day=DAY, pull_id="p1",
                          storage_options=s3fs_kwargs(settings))
    assert location.startswith("s3://")
    result = tick(lake, dg.DagsterInstance.ephemeral(), None)
    assert [r.partition_key for r in result.run_requests] == [KEY]

    run = materialize(lake, ["raw_vendor", "bars_1m"])
    assert run.success
    store = Lake(lake.settings())
    index = store.read_partition("raw_vendor", PART)
    assert index["location"].to_list() == [location]
    assert index["raw_file"][0].startswith("vendor/symbol=AAPL/date=2019-02-04/")
    bars = store.read_partition("bars_1m", PART)
    assert bars["open"].to_list() == [r["open"] for r in records]
    assert date(2019, 2, 4) == bars["ts"][0].date()


def test_a_bars_read_through_recapture_does_not_make_the_other_feeds_look_stale(tmp_path):
    """bars_1m of a vendor symbol captures raw_vendor itself when it is missing (read-through), and records
    the same per-feed digests as raw_vendor does: after a full ingest and such a re-capture of identical
    pulls, a sensor without cursor requests nothing (the greeks and headlines were built from these pulls)."""
    lake = LakeResource(home=str(tmp_path / "lake"))
    generate(lake.settings().landing_root, ["AAPL"], DAY, DAY, seed=11)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        [capture] = tick(lake, instance, None).run_requests
        assert run_request(lake, instance, capture).success
        Lake(lake.settings()).delete("raw_vendor", PART, "hot")
        read_through = run_request(lake, instance, dg.RunRequest(
            run_key=None, partition_key=KEY, asset_selection=[dg.AssetKey("bars_1m")]))
        assert read_through.success
        assert "raw_vendor" in materialized(read_through)  # logged by bars_1m's read-through capture
        assert tick(lake, instance, None).run_requests == []


def test_dukascopy_assets_of_a_vendor_symbol_need_no_datafeed(tmp_path):
    """raw_dukascopy and ticks of a vendor-only symbol (AAPL) store empty partitions without opening the
    Dukascopy source, so a lake of vendor symbols runs with no datafeed at all (here: a missing directory)."""
    lake = LakeResource(home=str(tmp_path / "lake"))
    result = materialize(lake, ["raw_dukascopy", "ticks"])
    assert result.success
    assert materialized(result) == ["raw_dukascopy", "ticks"]
    store = Lake(lake.settings())
    assert store.read_partition("raw_dukascopy", PART).height == 0
    assert store.read_partition("ticks", PART).height == 0

"""Bad input: each bad file or record gets a clear error or quarantine, the rest of the partition
proceeds, and nothing crashes the run silently.

BI5 corruptions go through the real ingestion path (``raw_dukascopy`` → ``ticks`` via
``dg.materialize``) with a datafeed made from the real fixture day with six hours damaged; vendor JSON
pulls go through ``parse_pull`` and the ``raw_vendor`` asset. The codec's round trip is property-tested.
"""

from __future__ import annotations

import json
import lzma
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake_resources.client import LakeClient
from lake_resources.settings import LakeSettings
from lake_resources.sources.dukascopy import bi5
from lake_resources.sources.vendor import compress_pull, make_pull, parse_pull, write_pull
from lake_resources.storage import Lake
from lake_resources.transforms.ticks import normalize_ticks
from lake_tests.reliability.conftest import (
    copy_datafeed_day,
    failure_messages,
    lake_resources_for,
    materialize,
)

DAY = date(2019, 2, 4)
FACTOR = 100000  # EURUSD decimal factor
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# BI5 through the ticks asset
# ---------------------------------------------------------------------------------------------
def _records(payload: bytes) -> np.ndarray:
    return np.frombuffer(lzma.decompress(payload), dtype=bi5.TICK_RECORD).copy()


def _encode(recs: np.ndarray) -> bytes:
    return bi5.encode_ticks(recs["ms"], recs["ask"], recs["bid"], recs["ask_volume"], recs["bid_volume"])


def _random_bytes(payload: bytes) -> bytes:
    return random.Random(2).randbytes(len(payload))


def _truncated(payload: bytes) -> bytes:
    return payload[: len(payload) // 2]


def _ragged(payload: bytes) -> bytes:
    return lzma.compress(lzma.decompress(payload) + b"\x00" * 7, format=lzma.FORMAT_ALONE)


def _beyond_hour(payload: bytes) -> bytes:
    recs = _records(payload)
    extra = recs[-3:].copy()
    extra["ms"] = [3_600_000, 3_600_001, 4_000_000]
    return _encode(np.concatenate([recs, extra]))


def _zero_prices(payload: bytes) -> bytes:
    recs = _records(payload)
    recs["bid"][5] = 0
    recs["ask"][9] = 0
    return _encode(recs)


def _nan_volumes(payload: bytes) -> bytes:
    recs = _records(payload)
    recs["bid_volume"][3] = np.nan
    recs["ask_volume"][4] = np.nan
    return _encode(recs)


# hour -> (what, damage, ticks of the hour's original file that must be refused)
DAMAGE = {
    2: ("random bytes", _random_bytes, "all"),
    4: ("truncated LZMA", _truncated, "all"),
    6: ("payload not a multiple of the record size", _ragged, "all"),
    8: ("timestamps beyond the hour", _beyond_hour, []),  # the 3 appended records are refused, the rest kept
    10: ("zero prices", _zero_prices, [5, 9]),
    12: ("NaN volumes", _nan_volumes, [3, 4]),
}


@pytest.fixture(scope="module")
def damaged_run(tmp_path_factory, dagster_defs, datafeed_dir):
    """The real fixture day with six damaged hours, materialized through ``raw_dukascopy`` and
    ``ticks``; returns the run, the lake's client and the ticks expected from the undamaged data."""
    root = tmp_path_factory.mktemp("damaged")
    day_dir = copy_datafeed_day(datafeed_dir / "EURUSD/2019/01/04", root / "datafeed", "EURUSD", DAY.isoformat())
    originals = [(day_dir / f"{h:02d}h_ticks.bi5").read_bytes() for h in range(24)]
    for hour, (_what, damage, _refused) in DAMAGE.items():
        (day_dir / f"{hour:02d}h_ticks.bi5").write_bytes(damage(originals[hour]))
    home = root / "lake"
    result = materialize(dagster_defs, ["raw_dukascopy", "ticks"], lake_resources_for(home, root / "datafeed"))

    # Expected: each hour decoded on its own from the undamaged file, minus what the damage refuses.
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=timezone.utc)
    kept = []
    for hour in range(24):
        ticks = bi5.decode_ticks(originals[hour], start + timedelta(hours=hour), FACTOR)
        refused = DAMAGE.get(hour, (None, None, []))[2]
        if refused == "all":
            continue
        kept.append(ticks.with_row_index("_i").filter(~pl.col("_i").is_in(refused)).drop("_i"))
    expected = normalize_ticks(pl.concat(kept), "EURUSD")
    client = LakeClient(LakeSettings(home=home))
    return result, client, expected


def _quarantine(client: LakeClient) -> pl.DataFrame:
    return client.sql("select ts, source, reason, detail from quarantine where stage = 'ticks' and symbol = ? order by ts, reason",
                      ["EURUSD"])


def _hour_rows(client: LakeClient, hour: int) -> pl.DataFrame:
    return _quarantine(client).filter(pl.col("ts").dt.hour() == hour)


@pytest.mark.data_loss
def test_damaged_hours_do_not_stop_the_partition(damaged_run):
    """Six damaged hours in one real day: the run succeeds and every good tick of the day is stored,
    exactly (the undamaged hours equal their independent decode, the damaged ones lose only what is bad)."""
    result, client, expected = damaged_run
    assert result.success, failure_messages(result)
    stored = client.read("ticks", symbols="EURUSD", start="2019-02-04", end="2019-02-04")
    assert stored.equals(expected)


def test_bi5_random_bytes_hour_is_quarantined(damaged_run):
    """BI5 hour of random bytes: quarantined as a corrupt LZMA stream, naming the raw file."""
    _, client, _ = damaged_run
    [row] = _hour_rows(client, 2).to_dicts()
    assert "02h_ticks.bi5" in row["source"] and "02h_ticks.bi5" in row["reason"]
    assert "corrupt or truncated LZMA stream" in row["reason"]


def test_bi5_truncated_lzma_hour_is_quarantined(damaged_run):
    """BI5 hour cut in half (truncated LZMA): quarantined as truncated, naming the raw file."""
    _, client, _ = damaged_run
    [row] = _hour_rows(client, 4).to_dicts()
    assert "04h_ticks.bi5" in row["reason"] and "truncated" in row["reason"]


def test_bi5_ragged_payload_hour_is_quarantined(damaged_run):
    """BI5 hour whose payload is not a multiple of the 20-byte record: quarantined with the size."""
    _, client, _ = damaged_run
    [row] = _hour_rows(client, 6).to_dicts()
    assert "06h_ticks.bi5" in row["reason"] and "not a multiple of the 20-byte record" in row["reason"]


def test_bi5_records_beyond_the_hour_are_quarantined(damaged_run):
    """BI5 records whose ms offset lies beyond the hour: those 3 records quarantined, the hour's
    other ticks stored."""
    _, client, _ = damaged_run
    [row] = _hour_rows(client, 8).to_dicts()
    assert "08h_ticks.bi5" in row["reason"] and "beyond the hour" in row["reason"] and row["detail"] == "3 records"


def test_bi5_zero_prices_are_quarantined(damaged_run):
    """BI5 ticks with a zero bid or ask (BI5 prices are unsigned, so zero is the only non-positive
    one it can carry): each quarantined with its reason and values."""
    _, client, _ = damaged_run
    rows = _hour_rows(client, 10)
    assert sorted(rows["reason"].to_list()) == ["ask is not a positive finite price", "bid is not a positive finite price"]
    assert all("bid=" in d and "ask=" in d for d in rows["detail"])


def test_bi5_nan_volumes_are_quarantined(damaged_run):
    """BI5 ticks with NaN volumes: each quarantined, saying which volume."""
    _, client, _ = damaged_run
    rows = _hour_rows(client, 12)
    assert sorted(rows["reason"].to_list()) == ["ask_volume is NaN, infinite, negative or null",
                                                "bid_volume is NaN, infinite, negative or null"]


def test_quarantine_holds_nothing_but_the_damage(damaged_run):
    """The quarantine of the damaged day lists the six damaged hours and nothing else."""
    _, client, _ = damaged_run
    assert sorted(set(_quarantine(client)["ts"].dt.hour().to_list())) == sorted(DAMAGE)


# ---------------------------------------------------------------------------------------------
# Codec properties
# ---------------------------------------------------------------------------------------------
U32 = st.integers(min_value=0, max_value=2**32 - 1)
F32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
HOUR = datetime(2019, 2, 4, 13, tzinfo=timezone.utc)
HOUR_MS = int(HOUR.timestamp()) * 1000


@st.composite
def tick_records(draw):
    n = draw(st.integers(min_value=0, max_value=60))
    ints = lambda lo, hi: draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))  # noqa: E731
    floats = lambda: draw(st.lists(F32, min_size=n, max_size=n))  # noqa: E731
    return (np.array(ints(0, bi5.MS_PER_HOUR - 1), dtype=np.uint32), np.array(ints(0, 2**32 - 1), dtype=np.uint32),
            np.array(ints(0, 2**32 - 1), dtype=np.uint32), np.array(floats(), dtype=np.float32),
            np.array(floats(), dtype=np.float32))


@PROPERTY
@given(tick_records(), st.sampled_from([10, 1000, 100000]))
def test_bi5_tick_codec_round_trips(recs, factor):
    """Property: ``encode_ticks`` → ``decode_ticks`` gives back every record: time, integer price
    points, and volumes bit for bit (NaN and infinities included)."""
    ms, ask, bid, ask_volume, bid_volume = recs
    frame = bi5.decode_ticks(bi5.encode_ticks(ms, ask, bid, ask_volume, bid_volume), HOUR, factor)
    assert frame.height == len(ms)
    assert (frame["ts"].dt.epoch("ms") - HOUR_MS).to_list() == ms.tolist()
    assert np.array_equal(np.rint(frame["ask"].to_numpy() * factor).astype(np.int64), ask.astype(np.int64))
    assert np.array_equal(np.rint(frame["bid"].to_numpy() * factor).astype(np.int64), bid.astype(np.int64))
    assert np.array_equal(frame["ask_volume"].to_numpy().view(np.uint32), ask_volume.view(np.uint32))
    assert np.array_equal(frame["bid_volume"].to_numpy().view(np.uint32), bid_volume.view(np.uint32))


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 86_399), U32, U32, U32, U32, F32), max_size=40))
def test_bi5_candle_codec_round_trips(candles):
    """Property: ``encode_candles`` → ``decode_candles`` gives back every candle (open time, the four
    prices in points, volume bit for bit)."""
    cols = list(zip(*candles)) if candles else [[]] * 6
    sec, open_, close, low, high = (np.array(c, dtype=np.uint32) for c in cols[:5])
    volume = np.array(cols[5], dtype=np.float32)
    frame = bi5.decode_candles(bi5.encode_candles(sec, open_, close, low, high, volume), HOUR, 1000)
    assert frame.height == len(candles)
    assert (frame["ts"].dt.epoch("s") - HOUR_MS // 1000).to_list() == sec.tolist()
    for name, points in (("open", open_), ("close", close), ("low", low), ("high", high)):
        assert np.array_equal(np.rint(frame[name].to_numpy() * 1000).astype(np.int64), points.astype(np.int64))
    assert np.array_equal(frame["volume"].to_numpy().view(np.uint32), volume.view(np.uint32))


@PROPERTY
@given(st.binary(max_size=400))
def test_bi5_decoder_refuses_arbitrary_bytes_with_a_clear_error(payload):
    """Property: any byte string either decodes to whole records or raises ``Bi5Error`` naming the
    file: never another exception, never a partial record."""
    try:
        frame = bi5.decode_ticks(payload, HOUR, FACTOR, name="fuzz.bi5")
    except bi5.Bi5Error as exc:
        assert str(exc).startswith("fuzz.bi5: ")
    else:
        assert frame.height * bi5.TICK_RECORD.itemsize == len(bi5.decompress(payload))


@PROPERTY
@given(st.dictionaries(st.integers(0, 23), st.binary(min_size=1, max_size=64), max_size=6))
def test_day_decoder_sets_aside_garbage_hours_and_keeps_the_rest(garbage):
    """Property: a day whose hours are good files except some garbage ones decodes every good hour
    in full and reports each garbage hour as a problem; it never raises."""
    good = bi5.encode_ticks(np.arange(0, 3_600_000, 600_000, dtype=np.uint32), np.full(6, 110_000, np.uint32),
                            np.full(6, 109_990, np.uint32), np.ones(6, np.float32), np.ones(6, np.float32))
    hours = [garbage.get(h, good) for h in range(24)]
    frame, problems = bi5.decode_day_ticks_checked(hours, DAY, FACTOR)
    bad_hours = {p.hour for p in problems}
    assert bad_hours <= set(garbage)
    decodable = [h for h in range(24) if h not in bad_hours]
    assert frame.height == sum(len(bi5.decompress(hours[h])) // bi5.TICK_RECORD.itemsize for h in decodable)


# ---------------------------------------------------------------------------------------------
# Vendor JSON pulls
# ---------------------------------------------------------------------------------------------
VENDOR = "acme"
VDAY = "2019-02-04"
PULLED_AT = datetime(2019, 2, 4, 21, 5, tzinfo=timezone.utc)


def _greek(minute: int, **fields) -> dict:
    return {"ts": f"{VDAY}T14:{minute:02d}:00Z", "underlying": "AAPL", "expiry": "2019-03-15", "strike": 170.0,
            "right": "C", "iv": 0.25, "delta": 0.55, "gamma": 0.03, "theta": -0.05, "vega": 0.2, **fields}


def _bar(minute: int, **fields) -> dict:
    return {"ts": f"{VDAY}T14:{minute:02d}:00Z", "open": 170.0, "high": 170.5, "low": 169.9, "close": 170.2,
            "volume": 1200, **fields}


def _pull(feed: str, records: list, **envelope) -> bytes:
    doc = json.loads(make_pull(VENDOR, feed, "AAPL", VDAY, PULLED_AT, records))
    doc.update(envelope)
    return json.dumps(doc).encode()


GOOD_BARS = [_bar(30), _bar(31)]

# (id, payload, parse_pull kwargs, reason prefix, whole pull refused?)
PULL_CASES = [
    ("invalid-json", b'{"vendor": "acme", "feed": "bars", "records": [', {}, "invalid JSON", True),
    ("invalid-utf8", _pull("bars", GOOD_BARS).replace(b"acme", b"ac\xffe"), {}, "invalid UTF-8 at byte", True),
    ("enormous", _pull("bars", GOOD_BARS + [_bar(32, padding="x" * 300_000)]), {"max_pull_bytes": 200_000},
     "payload larger than the limit of 200000 bytes", True),
    ("zstd-bomb", compress_pull(_pull("bars", [_bar(30, padding=" " * 3_000_000)])), {"max_pull_bytes": 1_000_000},
     "zstd payload decompresses to more than the limit", True),
    ("missing-envelope-field", json.dumps({"vendor": VENDOR, "feed": "bars", "symbol": "AAPL", "date": VDAY,
                                           "records": GOOD_BARS}).encode(), {}, "envelope: missing required field 'pulled_at'", True),
    ("unknown-symbol", _pull("bars", GOOD_BARS, symbol="ZZZQX"), {"symbol": None}, "symbol 'ZZZQX' is not in the instrument catalogue", True),
    ("date-outside-partition", _pull("bars", GOOD_BARS, date="2019-02-05"), {},
     "envelope date 2019-02-05 does not match the partition's day 2019-02-04", True),
    ("wrong-type", _pull("bars", GOOD_BARS + [_bar(32, close="170.1")]), {}, "field 'close': expected a number, got string", False),
    ("missing-field", _pull("bars", GOOD_BARS + [{k: v for k, v in _bar(32).items() if k != "close"}]), {},
     "missing required field 'close'", False),
    ("negative-price", _pull("bars", GOOD_BARS + [_bar(32, open=-1.0, low=-1.0)]), {}, "bar prices must be > 0", False),
    ("record-outside-day", _pull("bars", GOOD_BARS + [_bar(32, ts="2019-02-05T00:00:00Z")]), {},
     "ts 2019-02-05T00:00:00Z is outside the pull's day 2019-02-04", False),
]


@pytest.mark.parametrize(("payload", "kwargs", "reason", "whole"), [c[1:] for c in PULL_CASES], ids=[c[0] for c in PULL_CASES])
def test_bad_json_pull_is_quarantined_and_the_rest_proceeds(payload, kwargs, reason, whole):
    """Bad vendor JSON pull: refused with a reason naming what is wrong (the whole pull if it cannot
    be read, else the one bad record, its good records parsed)."""
    kwargs = {"pull_id": "p1", "location": "landing/p1.json", "day": VDAY, "symbol": "AAPL", "vendor": VENDOR} | kwargs
    result = parse_pull("bars", payload, **kwargs)
    [entry] = result.quarantine
    assert entry.reason.startswith(reason), entry.reason
    assert entry.location == "landing/p1.json"
    if whole:
        assert entry.record_index is None and result.frame.height == 0
    else:
        assert entry.record_index == 2 and result.frame.height == len(GOOD_BARS)


def test_unknown_vendor_fields_are_kept_not_refused():
    """Vendor JSON records with fields the lake does not know: kept as extra columns, nothing refused."""
    result = parse_pull("bars", _pull("bars", [_bar(30, exchange="XNAS", flags={"odd_lot": True})]),
                        day=VDAY, symbol="AAPL", vendor=VENDOR)
    assert result.quarantine == []
    assert result.frame["exchange"].to_list() == ["XNAS"] and result.frame["flags"].to_list() == ['{"odd_lot":true}']


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@PROPERTY
@given(st.one_of(st.binary(max_size=200), st.lists(JSON_VALUES, max_size=4).map(
    lambda recs: json.dumps({"vendor": VENDOR, "feed": "bars", "symbol": "AAPL", "date": VDAY,
                             "pulled_at": "2019-02-04T21:05:00Z", "records": recs}).encode())))
def test_parse_pull_never_raises_on_arbitrary_input(payload):
    """Property: arbitrary bytes, or a valid envelope with arbitrary JSON records, never make
    ``parse_pull`` raise: every record is either parsed or quarantined with a reason."""
    result = parse_pull("bars", payload, day=VDAY, symbol="AAPL", vendor=VENDOR)
    whole = [q for q in result.quarantine if q.record_index is None]
    if not whole:
        records = json.loads(payload)["records"]
        assert result.frame.height + len(result.quarantine) == len(records)
    assert all(q.reason for q in result.quarantine)


@pytest.mark.data_loss
def test_raw_vendor_asset_quarantines_bad_pulls_and_keeps_the_rest(tmp_path, dagster_defs):
    """Through the ``raw_vendor`` and ``option_greeks`` assets: a landing day with good pulls and
    invalid JSON, invalid UTF-8, a zstd bomb, an unknown symbol, a date outside the partition and a
    bad record: the run succeeds, each refusal is in the ``quarantine`` dataset with its reason,
    every pull is kept raw, and every good record reaches ``option_greeks``."""
    landing = tmp_path / "landing"
    good = make_pull(VENDOR, "greeks", "AAPL", VDAY, PULLED_AT, [_greek(30), _greek(31, strike=175.0)])
    partial = make_pull(VENDOR, "greeks", "AAPL", VDAY, PULLED_AT, [_greek(32, strike=180.0), _greek(33, delta="high")])
    bad = {
        "b-invalid-json": b'{"vendor": "acme", "feed": "greeks", "records": [',
        "c-invalid-utf8": good.replace(b"acme", b"ac\xffe"),
        "d-unknown-symbol": json.dumps(json.loads(good) | {"symbol": "ZZZQX"}).encode(),
        "e-other-day": json.dumps(json.loads(good) | {"date": "2019-02-05"}).encode(),
    }
    write_pull(landing, good, vendor=VENDOR, feed="greeks", symbol="AAPL", day=VDAY, pull_id="a-good")
    write_pull(landing, partial, vendor=VENDOR, feed="greeks", symbol="AAPL", day=VDAY, pull_id="f-partial")
    for pull_id, payload in bad.items():
        write_pull(landing, payload, vendor=VENDOR, feed="greeks", symbol="AAPL", day=VDAY, pull_id=pull_id)
    bomb = compress_pull(make_pull(VENDOR, "greeks", "AAPL", VDAY, PULLED_AT, [_greek(34, note=" " * (65 * 2**20))]))
    directory = landing / "vendor" / VENDOR / "greeks" / VDAY / "AAPL"
    (directory / "g-bomb.json.zst").write_bytes(bomb)

    home = tmp_path / "lake"
    result = materialize(dagster_defs, ["raw_vendor", "option_greeks"], lake_resources_for(home, landing=landing),
                         key=f"{VDAY}|AAPL")
    assert result.success, failure_messages(result)
    client = LakeClient(LakeSettings(home=home, landing=landing))
    quarantine = client.sql("select source, record, reason from quarantine where stage = 'vendor' and symbol = 'AAPL' order by source")
    reasons = dict(zip([Path(s).name for s in quarantine["source"]], quarantine["reason"]))
    assert reasons["b-invalid-json.json"].startswith("invalid JSON")
    assert reasons["c-invalid-utf8.json"].startswith("invalid UTF-8")
    assert reasons["d-unknown-symbol.json"] == "symbol 'ZZZQX' is not in the instrument catalogue"
    assert reasons["e-other-day.json"] == "envelope date 2019-02-05 does not match the partition's day 2019-02-04"
    assert reasons["f-partial.json"] == "field 'delta': expected a number, got string"
    assert reasons["g-bomb.json.zst"].startswith("zstd payload decompresses to more than the limit")
    assert quarantine.height == 6

    index = client.read("raw_vendor", symbols="AAPL")
    assert dict(zip(index["pull_id"], index["status"])) == {
        "a-good": "ok", "b-invalid-json": "quarantined", "c-invalid-utf8": "quarantined", "d-unknown-symbol": "quarantined",
        "e-other-day": "quarantined", "f-partial": "partial", "g-bomb": "quarantined"}
    store = Lake(LakeSettings(home=home))
    assert all(store.raw.get_file(f) for f in index["raw_file"])  # every pull kept raw, even the refused ones
    greeks = client.read("option_greeks", symbols="AAPL")
    assert sorted(greeks["strike"].to_list()) == [170.0, 175.0, 180.0]


def test_damaged_api_hours_are_quarantined_through_the_assets_and_kept_as_received(tmp_path, api_server, dagster_defs):
    """The JSON data API feed through ``raw_dukascopy`` -> ``ticks``: five hours damaged (columns of
    different lengths, NaN volumes, a negative time delta, a missing base price, a body truncated on every
    ask); each is quarantined with its reason, the other 19 hours proceed, and the raw zone keeps each
    response as received."""
    from lake_resources.dagster_io import DukascopyResource
    from lake_resources.sources.dukascopy import api_codec as codec
    from lake_resources.sources.vendor import decompress_pull

    root = api_server.root

    def damage(hour: int, change) -> None:
        path = root / f"ticks/EUR-USD/2019/2/4/{hour}"
        obj = json.loads(path.read_bytes())
        change(obj)
        path.write_text(json.dumps(obj))

    damage(1, lambda o: o["bids"].pop())
    damage(2, lambda o: o["askVolumes"].__setitem__(0, float("nan")))
    damage(3, lambda o: o["times"].__setitem__(9, -1))
    damage(4, lambda o: o.__setitem__("ask", None))
    api_server.faults = {"ticks/EUR-USD/2019/2/4/5": [("truncate",)] * 3}
    resources = lake_resources_for(tmp_path / "lake")
    resources["dukascopy"] = DukascopyResource(feed="api", api_url=api_server.base, lake=resources["lake"],
                                               retries=2, api_batch_pause_seconds=0, api_empty_pause_seconds=0)
    result = materialize(dagster_defs, ["raw_dukascopy", "ticks"], resources)
    assert result.success
    lake = Lake(LakeSettings(home=tmp_path / "lake"))
    part = (("symbol", "EURUSD"), ("date", "2019-02-04"))
    quarantine = lake.read_partition("quarantine", (("stage", "ticks"), *part))
    reasons = {int(ts.hour): reason for ts, reason in zip(quarantine["ts"], quarantine["reason"])}
    assert sorted(reasons) == [1, 2, 3, 4, 5]
    for hour, words in {1: "column lengths differ", 2: "non-finite", 3: "negative time delta",
                        4: "missing base price", 5: "not valid JSON"}.items():
        assert words in reasons[hour], (hour, reasons[hour])
    ticks = lake.read_partition("ticks", part)
    assert set(ticks["ts"].dt.hour().unique().to_list()) == set(range(24)) - {1, 2, 3, 4, 5}
    served = (root / "ticks/EUR-USD/2019/2/4/5").read_bytes()
    kept = decompress_pull(lake.get_raw("dukascopy", "EURUSD", DAY, "05h_ticks.json.zst"))
    assert kept == served[: len(served) // 2]  # the truncated body, byte for byte
    with pytest.raises(codec.ApiDecodeError):
        codec.parse(kept)

"""Vendor pulls: landing layout round trip, zstd, schema drift and every quarantine reason."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from lake_resources.sources.vendor import (
    LandingDirVendor,
    Quarantined,
    compress_pull,
    core_schema,
    decompress_pull,
    latest_pull_rows,
    make_pull,
    parse_pull,
    pull_path,
    write_pull,
)

VENDOR = "acme"
DAY = date(2024, 1, 2)
PULLED_AT = datetime(2024, 1, 2, 21, 5, tzinfo=timezone.utc)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def _bar(minute: int, close: float = 185.2, **fields) -> dict:
    return {
        "ts": f"2024-01-02T14:{minute:02d}:00Z",
        "open": 185.0,
        "high": 185.5,
        "low": 184.9,
        "close": close,
        "volume": 1200 + minute,
        **fields,
    }


def _envelope(records: list, **overrides) -> dict:
    envelope = {
        "vendor": VENDOR,
        "feed": "bars",
        "symbol": "AAPL",
        "date": "2024-01-02",
        "pulled_at": "2024-01-02T21:05:00Z",
        "records": records,
    }
    envelope.update(overrides)
    return envelope


def _bytes(envelope: object) -> bytes:
    return json.dumps(envelope).encode()


def _parse(feed: str, payload: bytes, **kw):
    kw.setdefault("pull_id", "p1")
    kw.setdefault("day", DAY)
    kw.setdefault("symbol", "AAPL")
    kw.setdefault("vendor", VENDOR)
    return parse_pull(feed, payload, **kw)


# ----------------------------------------------------------------------------------- round trips


def test_bars_round_trip_through_the_landing_directory(tmp_path: Path):
    records = [_bar(31, vwap=185.21, trades=40), _bar(30, close=185.1, vwap=185.11, trades=31)]
    payload = make_pull(VENDOR, "bars", "AAPL", DAY, PULLED_AT, records, request={"interval": "1m"})
    location = write_pull(tmp_path, payload, vendor=VENDOR, feed="bars", symbol="aapl", day=DAY, pull_id="20240102T210500Z")
    assert location == str(tmp_path / "vendor/acme/bars/2024-01-02/AAPL/20240102T210500Z.json")

    connector = LandingDirVendor(tmp_path, VENDOR)
    pulls = connector.fetch("bars", "AAPL", "2024-01-02")
    assert len(pulls) == 1
    pull = pulls[0]
    assert (pull.pull_id, pull.symbol, pull.day, pull.payload, pull.size) == (
        "20240102T210500Z", "AAPL", DAY, payload, len(payload)
    )
    assert pull.location.endswith("vendor/acme/bars/2024-01-02/AAPL/20240102T210500Z.json")

    result = connector.parse_pulls("bars", pulls)
    assert result.quarantine == []
    expected = pl.DataFrame(
        {
            "ts": [_utc(2024, 1, 2, 14, 30), _utc(2024, 1, 2, 14, 31)],  # sorted by ts
            "symbol": ["AAPL", "AAPL"],
            "open": [185.0, 185.0],
            "high": [185.5, 185.5],
            "low": [184.9, 184.9],
            "close": [185.1, 185.2],
            "volume": [1230.0, 1231.0],
            "vwap": [185.11, 185.21],
            "trades": [31, 40],
            "pull_id": ["20240102T210500Z"] * 2,
            "pulled_at": [PULLED_AT, PULLED_AT],
        },
        schema=core_schema("bars"),
    )
    assert result.frame.equals(expected)
    assert result.frame.schema == expected.schema


def test_zstd_pull_round_trip_parses_like_the_plain_pull(tmp_path: Path):
    payload = make_pull(VENDOR, "bars", "AAPL", DAY, PULLED_AT, [_bar(30), _bar(31)])
    packed = compress_pull(payload)
    assert decompress_pull(packed) == payload and len(packed) < len(payload)

    write_pull(tmp_path, payload, vendor=VENDOR, feed="bars", symbol="AAPL", day=DAY, pull_id="z1", compressed=True)
    assert (tmp_path / pull_path(VENDOR, "bars", "AAPL", DAY, "z1", compressed=True)).is_file()
    connector = LandingDirVendor(tmp_path, VENDOR)
    [pull] = connector.fetch("bars", "AAPL", DAY)
    assert pull.pull_id == "z1" and pull.payload == packed
    from_zstd = connector.parse_pulls("bars", [pull])
    plain = _parse("bars", payload, pull_id="z1")
    assert from_zstd.quarantine == [] and from_zstd.frame.equals(plain.frame) and from_zstd.frame.height == 2


def test_timestamps_keep_nanoseconds_and_honour_offsets():
    # headlines: a minute bar off the minute boundary is refused (test_bad_input covers that)
    records = [
        {"ts": "2024-01-02T14:30:00.123456789Z", "headline": "a"},
        {"ts": "2024-01-02T15:31:00+01:00", "headline": "b"},
    ]
    result = _parse("headlines", _bytes(_envelope(records, feed="headlines")))
    assert result.quarantine == []
    base_ns = int(_utc(2024, 1, 2, 14, 30).timestamp()) * 1_000_000_000
    assert result.frame["ts"].dt.epoch("ns").to_list() == [base_ns + 123_456_789, base_ns + 60 * 1_000_000_000]


def test_latest_pull_wins_per_bar_when_a_vendor_revises_data():
    first = _parse("bars", _bytes(_envelope([_bar(30, close=185.1), _bar(31)])), pull_id="a")
    revised = _parse(
        "bars", _bytes(_envelope([_bar(30, close=185.3)], pulled_at="2024-01-02T22:00:00Z")), pull_id="b"
    )
    frame = pl.concat([revised.frame, first.frame])
    latest = latest_pull_rows(frame, "bars")
    assert latest.select("ts", "close", "pull_id").rows() == [
        (_utc(2024, 1, 2, 14, 30), 185.3, "b"),
        (_utc(2024, 1, 2, 14, 31), 185.2, "a"),
    ]


# ----------------------------------------------------------------------------------- schema drift


def test_unknown_fields_are_kept_typed_and_missing_optional_fields_are_null():
    records = [
        _bar(30, vwap=185.0, exchange="XNAS", halted=False, seq=1, adj=1, meta={"src": "sip"}, mixed=1, pull_id="v-1"),
        _bar(31, exchange="XNAS", halted=True, seq=2, adj=1.5, meta=[1, 2], mixed="x"),  # no vwap/trades
        _bar(32, seq=None),
    ]
    result = _parse("bars", _bytes(_envelope(records)))
    assert result.quarantine == []
    frame = result.frame
    assert list(frame.columns) == [*core_schema("bars"), "exchange", "halted", "seq", "adj", "meta", "mixed", "vendor_pull_id"]
    assert frame.schema["exchange"] == pl.Utf8 and frame["exchange"].to_list() == ["XNAS", "XNAS", None]
    assert frame.schema["halted"] == pl.Boolean and frame["halted"].to_list() == [False, True, None]
    assert frame.schema["seq"] == pl.Int64 and frame["seq"].to_list() == [1, 2, None]
    assert frame.schema["adj"] == pl.Float64 and frame["adj"].to_list() == [1.0, 1.5, None]
    assert frame["meta"].to_list() == ['{"src":"sip"}', "[1,2]", None]
    assert frame["mixed"].to_list() == ["1", "x", None]
    assert frame["vendor_pull_id"].to_list() == ["v-1", None, None]  # renamed, not dropped
    assert frame["pull_id"].to_list() == ["p1"] * 3
    assert frame["vwap"].to_list() == [185.0, None, None]
    assert frame["trades"].to_list() == [None, None, None]


def test_greeks_parse_normalise_right_and_allow_uncomputable_greeks():
    def greek(**fields):
        record = {
            "ts": "2024-01-02T15:00:00Z", "underlying": "AAPL", "expiry": "2024-01-05", "strike": 185,
            "right": "call", "iv": 0.25, "delta": 0.52, "gamma": 0.04, "theta": -0.21, "vega": 0.08,
        }
        record.update(fields)
        return {k: v for k, v in record.items() if v is not ...}

    records = [
        greek(),
        greek(right="P", delta=-0.48, open_interest=1500, option_symbol="AAPL240105P00185000"),
        greek(iv=None, delta=None, gamma=None, theta=None, vega=None),
        greek(underlying="MSFT"),
        greek(expiry="2024-01-01"),
        greek(underlying=...),
        greek(right="X"),
        greek(delta=...),
    ]
    result = _parse("greeks", _bytes(_envelope(records, feed="greeks")))
    frame = result.frame
    assert frame.height == 3
    assert frame.schema["expiry"] == pl.Date and frame["expiry"].to_list() == [date(2024, 1, 5)] * 3
    assert frame["right"].to_list() == ["C", "P", "C"]
    assert frame["symbol"].to_list() == ["AAPL"] * 3
    assert frame["strike"].to_list() == [185.0] * 3
    assert frame["iv"].to_list() == [0.25, 0.25, None]
    assert frame["open_interest"].to_list() == [None, 1500, None]
    assert [(q.record_index, q.reason) for q in result.quarantine] == [
        (3, "field 'underlying' 'MSFT' does not match the pull's symbol 'AAPL'"),
        (4, "expiry 2024-01-01 is before the pull's day 2024-01-02"),
        (5, "missing required field 'underlying'"),
        (6, "field 'right': 'X' is not C/P (or call/put)"),
        (7, "missing required field 'delta'"),
    ]


def test_headlines_default_symbols_and_optional_fields():
    records = [
        {"ts": "2024-01-02T08:00:00Z", "headline": "Apple beats estimates", "sentiment": 0.6, "id": 123},
        {"ts": "2024-01-02T09:00:00Z", "headline": "Chip stocks rally", "symbols": ["aapl", "NVDA"], "source": "Wire"},
        {"ts": "2024-01-02T10:00:00Z", "headline": "   "},
        {"ts": "2024-01-02T11:00:00Z", "headline": "Too happy", "sentiment": 2},
        {"ts": "2024-01-02T12:00:00Z", "headline": "Bad tags", "symbols": ["../x"]},
    ]
    result = _parse("headlines", _bytes(_envelope(records, feed="headlines")))
    frame = result.frame
    assert frame["symbols"].to_list() == [["AAPL"], ["AAPL", "NVDA"]]
    assert frame["sentiment"].to_list() == [0.6, None]
    assert frame["source"].to_list() == [None, "Wire"]
    assert frame["headline_id"].to_list() == ["123", None]
    assert [q.record_index for q in result.quarantine] == [2, 3, 4]
    assert result.quarantine[0].reason == "empty headline"
    assert result.quarantine[1].reason == "sentiment 2.0 outside [-1, 1]"
    assert "field 'symbols'" in result.quarantine[2].reason


# ------------------------------------------------------------------------------------ quarantine


def test_bad_records_are_quarantined_alone():
    records = [
        _bar(30),
        _bar(31, open="185.0"),  # wrong type
        {k: v for k, v in _bar(32).items() if k != "close"},  # missing required field
        _bar(33, ts="2024-01-03T00:00:00Z"),  # outside the partition's day
        _bar(34, ts="2024-01-02T14:34:00"),  # no UTC offset
        ["not", "an", "object"],
        _bar(36, high=180.0),  # high below open/close
        _bar(37, volume=True),  # a boolean is not a number
        _bar(38, symbol="MSFT"),  # another symbol's bar
        _bar(39, trades=2.5),  # a count must be whole
        _bar(40, symbol="aapl", trades=7.0),  # fine: same symbol, whole count written as a float
    ]
    result = _parse("bars", _bytes(_envelope(records)), location="somewhere/p1.json")
    assert result.frame["ts"].to_list() == [_utc(2024, 1, 2, 14, 30), _utc(2024, 1, 2, 14, 40)]
    assert result.frame["trades"].to_list() == [None, 7]
    assert result.quarantine == [
        Quarantined("p1", 1, "field 'open': expected a number, got string", "somewhere/p1.json"),
        Quarantined("p1", 2, "missing required field 'close'", "somewhere/p1.json"),
        Quarantined("p1", 3, "ts 2024-01-03T00:00:00Z is outside the pull's day 2024-01-02", "somewhere/p1.json"),
        Quarantined("p1", 4, "field 'ts': '2024-01-02T14:34:00' is not an ISO 8601 timestamp with a UTC offset", "somewhere/p1.json"),
        Quarantined("p1", 5, "record is a JSON array, expected an object", "somewhere/p1.json"),
        Quarantined("p1", 6, "inconsistent bar: low 184.9 / high 180.0 do not bracket open 185.0 and close 185.2", "somewhere/p1.json"),
        Quarantined("p1", 7, "field 'volume': expected a number, got boolean", "somewhere/p1.json"),
        Quarantined("p1", 8, "field 'symbol' 'MSFT' does not match the pull's symbol 'AAPL'", "somewhere/p1.json"),
        Quarantined("p1", 9, "field 'trades': expected an integer, got number 2.5", "somewhere/p1.json"),
    ]
    assert result.quarantine_frame().select("record_index").to_series().to_list() == list(range(1, 10))


def _invalid_utf8() -> tuple[bytes, int]:
    good = json.dumps(_envelope([_bar(30, note="caf\u00e9")]), ensure_ascii=False).encode()
    bad = good.replace("caf\u00e9".encode(), b"caf\xff")
    return bad, bad.index(b"\xff")


def _bomb() -> bytes:
    padded = _envelope([_bar(30, padding=" " * 2_000_000)])
    return compress_pull(_bytes(padded))


@pytest.mark.parametrize(
    ("payload", "kwargs", "reason"),
    [
        (b'{"vendor": "acme", "records": [', {}, "invalid JSON: Expecting value at line 1 column 32"),  # at the end
        (_invalid_utf8()[0], {}, f"invalid UTF-8 at byte {_invalid_utf8()[1]}: invalid start byte"),
        (_bytes(_envelope([_bar(30)])).replace(b"185.5", b"NaN"), {}, "invalid JSON: NaN is not valid JSON"),
        (b"[1, 2]", {}, "payload is a JSON array, expected an object (the pull envelope)"),
        (_bytes({k: v for k, v in _envelope([]).items() if k != "date"}), {}, "envelope: missing required field 'date'"),
        (_bytes(_envelope({"0": _bar(30)})), {}, "envelope field 'records': expected a list, got object"),
        (_bytes(_envelope([], pulled_at=12)), {}, "envelope field 'pulled_at': expected a string, got number"),
        (_bytes(_envelope([_bar(30)], symbol="ZZZQQQ")), {"symbol": None}, "symbol 'ZZZQQQ' is not in the instrument catalogue"),
        (_bytes(_envelope([_bar(30)], symbol="MSFT")), {}, "envelope symbol 'MSFT' does not match the partition's symbol 'AAPL'"),
        (_bytes(_envelope([_bar(30)], date="2024-01-03")), {}, "envelope date 2024-01-03 does not match the partition's day 2024-01-02"),
        (_bytes(_envelope([_bar(30)], feed="greeks")), {}, "envelope feed 'greeks' does not match the requested feed 'bars'"),
        (_bytes(_envelope([_bar(30)], vendor="other")), {}, "envelope vendor 'other' does not match the connector's vendor 'acme'"),
        (_bytes(_envelope([_bar(30, padding="x" * 5000)])), {"max_pull_bytes": 4096}, "payload larger than the limit of 4096 bytes"),
        (_bomb(), {"max_pull_bytes": 100_000}, "zstd payload decompresses to more than the limit of 100000 bytes"),
        (b"\x28\xb5\x2f\xfd" + b"garbage" * 10, {}, "corrupt zstd payload"),
    ],
    ids=[
        "invalid-json", "invalid-utf8", "nan", "not-an-object", "missing-envelope-field", "records-not-a-list",
        "wrong-envelope-type", "unknown-symbol", "symbol-mismatch", "date-mismatch", "feed-mismatch",
        "vendor-mismatch", "too-large", "zstd-bomb", "corrupt-zstd",
    ],
)
def test_unreadable_pulls_are_quarantined_whole(payload: bytes, kwargs: dict, reason: str):
    result = _parse("bars", payload, location="landing/p1.json", **kwargs)
    assert result.frame.height == 0 and result.frame.schema == pl.Schema(core_schema("bars"))
    [entry] = result.quarantine
    assert (entry.pull_id, entry.record_index, entry.location) == ("p1", None, "landing/p1.json")
    assert entry.reason.startswith(reason)


def test_one_bad_pull_does_not_stop_the_partition(tmp_path: Path):
    good = make_pull(VENDOR, "bars", "AAPL", DAY, PULLED_AT, [_bar(30), _bar(31)])
    write_pull(tmp_path, good, vendor=VENDOR, feed="bars", symbol="AAPL", day=DAY, pull_id="a-good")
    write_pull(tmp_path, b'{"truncated": ', vendor=VENDOR, feed="bars", symbol="AAPL", day=DAY, pull_id="b-broken")
    huge = make_pull(VENDOR, "bars", "AAPL", DAY, PULLED_AT, [_bar(30, padding="x" * 20_000)])
    write_pull(tmp_path, huge, vendor=VENDOR, feed="bars", symbol="AAPL", day=DAY, pull_id="c-huge")
    partition = tmp_path / "vendor/acme/bars/2024-01-02/AAPL"
    (partition / ".d-inflight.json.tmp").write_bytes(b"{")  # an in-progress write: not a pull yet
    (partition / "notes.txt").write_text("stray file")  # not a pull either, but never silently skipped

    connector = LandingDirVendor(tmp_path, VENDOR, max_pull_bytes=10_000)
    pulls = connector.fetch("bars", "AAPL", DAY)
    assert [p.pull_id for p in pulls] == ["a-good", "b-broken", "c-huge", "notes.txt"]
    huge_pull = pulls[2]
    assert huge_pull.truncated and huge_pull.size == len(huge) and len(huge_pull.payload) == 10_001

    result = connector.parse_pulls("bars", pulls)
    assert result.frame.height == 2 and set(result.frame["pull_id"]) == {"a-good"}
    assert [(q.pull_id, q.record_index) for q in result.quarantine] == [
        ("b-broken", None), ("c-huge", None), ("notes.txt", None)
    ]
    assert result.quarantine[0].location == str(partition / "b-broken.json")
    assert result.quarantine[1].reason == "payload larger than the limit of 10000 bytes"


def test_empty_partition_and_caller_errors(tmp_path: Path):
    connector = LandingDirVendor(tmp_path, VENDOR)
    assert connector.fetch("bars", "AAPL", DAY) == []
    assert connector.parse_pulls("bars", []).frame.schema == pl.Schema(core_schema("bars"))
    with pytest.raises(ValueError, match="unknown vendor feed 'trades'"):
        connector.fetch("trades", "AAPL", DAY)
    with pytest.raises(ValueError, match="unknown vendor feed 'quotes'"):
        parse_pull("quotes", b"{}")
    with pytest.raises(ValueError, match="invalid symbol"):
        connector.fetch("bars", "../AAPL", DAY)
    with pytest.raises(ValueError, match="invalid vendor name"):
        LandingDirVendor(tmp_path, "../acme")

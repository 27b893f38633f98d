"""Bad input that is well formed: nonsense prices, decompression bombs, minute bars that are not minutes,
duplicate JSON keys, odd landing file names (issue 13, items 6 to 8). Each is quarantined with its reason,
never stored silently, the rest proceeds, and the real fixture day and generated data lose nothing (no
false quarantine).

BI5 cases go through the real ``raw_dukascopy`` → ``ticks`` assets on the real fixture day with some hours
damaged; vendor cases through ``parse_pull``, the ``raw_vendor`` → ``bars_1m`` assets and the landing sensor.
"""

from __future__ import annotations

import json
import lzma
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lake_resources.client import LakeClient
from lake_resources.settings import LakeSettings
from lake_resources.sources.dukascopy import bi5
from lake_resources.sources.vendor import make_pull, parse_pull, write_pull
from lake_resources.transforms.ticks import normalize_ticks, split_bad_ticks
from lake_tests.reliability.conftest import (
    REPO_ROOT,
    copy_datafeed_day,
    failure_messages,
    lake_resources_for,
    materialize,
)

DAY = date(2019, 2, 4)
FACTOR = 100000  # EURUSD decimal factor
U32_MAX = 2**32 - 1
BOMB_BYTES = 200_000_000  # the bomb: 28 KB of LZMA that expands to 200 MB of zeros


def _records(payload: bytes) -> np.ndarray:
    return np.frombuffer(lzma.decompress(payload), dtype=bi5.TICK_RECORD).copy()


def _encode(recs: np.ndarray) -> bytes:
    return bi5.encode_ticks(recs["ms"], recs["ask"], recs["bid"], recs["ask_volume"], recs["bid_volume"])


def _u32_max_records(payload: bytes) -> bytes:
    """Three records priced at the uint32 maximum (EURUSD 42,949.67295)."""
    recs = _records(payload)
    recs["bid"][[7, 8]] = U32_MAX
    recs["ask"][[8, 20]] = U32_MAX
    return _encode(recs)


def _hour_near_u32_max(payload: bytes) -> bytes:
    """A whole hour one point under the uint32 maximum: a plausible-looking quote, EURUSD 42,949.67."""
    recs = _records(payload)
    recs["bid"] = U32_MAX - 1
    recs["ask"] = U32_MAX - 1
    return _encode(recs)


def _spikes(payload: bytes) -> bytes:
    """Four single ticks ten times the price (a wrong decimal factor), among good ones."""
    recs = _records(payload)
    for i in (11, 12, 300, 301):
        recs["bid"][i] *= 10
        recs["ask"][i] *= 10
    return _encode(recs)


def _bomb(_payload: bytes) -> bytes:
    return lzma.compress(b"\0" * BOMB_BYTES, format=lzma.FORMAT_ALONE)


def _zero_records_in_bound(_payload: bytes) -> bytes:
    """50,000 all-zero records (1 MB, inside the size bound): every tick has zero prices."""
    return lzma.compress(b"\0" * 50_000 * 20, format=lzma.FORMAT_ALONE)


# hour -> (damage, ticks of the hour's original file refused: indices or "all")
DAMAGE = {
    3: (_u32_max_records, [7, 8, 20]),
    9: (_hour_near_u32_max, "all"),
    13: (_spikes, [11, 12, 300, 301]),
    15: (_bomb, "all"),
    17: (_zero_records_in_bound, "all"),
}


@pytest.fixture(scope="module")
def nonsense_run(tmp_path_factory, dagster_defs, datafeed_dir):
    root = tmp_path_factory.mktemp("nonsense")
    day_dir = copy_datafeed_day(datafeed_dir / "EURUSD/2019/01/04", root / "datafeed", "EURUSD", DAY.isoformat())
    originals = [(day_dir / f"{h:02d}h_ticks.bi5").read_bytes() for h in range(24)]
    for hour, (damage, _refused) in DAMAGE.items():
        (day_dir / f"{hour:02d}h_ticks.bi5").write_bytes(damage(originals[hour]))
    home = root / "lake"
    result = materialize(dagster_defs, ["raw_dukascopy", "ticks"], lake_resources_for(home, root / "datafeed"))
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=timezone.utc)
    kept = []
    for hour in range(24):
        ticks = bi5.decode_ticks(originals[hour], start + timedelta(hours=hour), FACTOR)
        refused = DAMAGE.get(hour, (None, []))[1]
        if refused != "all":
            kept.append(ticks.with_row_index("_i").filter(~pl.col("_i").is_in(refused)).drop("_i"))
    expected = normalize_ticks(pl.concat(kept), "EURUSD")
    client = LakeClient(LakeSettings(home=home))
    quarantine = client.sql("select ts, source, reason, detail from quarantine where stage = 'ticks' order by ts, reason")
    return result, client, expected, quarantine


def _hour(quarantine: pl.DataFrame, hour: int) -> list[dict]:
    return quarantine.filter(pl.col("ts").dt.hour() == hour).to_dicts()


@pytest.mark.data_loss
def test_nonsense_hours_leave_exactly_the_good_ticks(nonsense_run):
    """A real day with nonsense prices and a decompression bomb: the run succeeds and the stored ticks
    are exactly the undamaged hours plus the good ticks of the damaged ones (no price of 42,949 stored)."""
    result, client, expected, _ = nonsense_run
    assert result.success, failure_messages(result)
    stored = client.read("ticks", symbols="EURUSD", start="2019-02-04", end="2019-02-04")
    assert stored["ask"].max() < 2 and stored.equals(expected)


def test_bi5_prices_at_the_u32_maximum_are_quarantined(nonsense_run):
    """BI5 records with a bid or ask at the uint32 maximum: set aside with one row naming the file and count."""
    [row] = _hour(nonsense_run[3], 3)
    assert "03h_ticks.bi5" in row["reason"] and "uint32 maximum" in row["reason"] and row["detail"] == "3 records"


def test_bi5_hour_of_absurd_prices_is_refused_as_one_row(nonsense_run):
    """A whole BI5 hour at EURUSD 42,949.67 (one point under the u32 maximum): every tick is a price jump
    against the day's rolling level, so the hour is refused whole, as one quarantine row."""
    [row] = _hour(nonsense_run[3], 9)
    assert "09h_ticks.bi5" in row["source"] and "hour refused whole" in row["reason"]
    assert "price jump" in row["reason"]


def test_single_price_spikes_are_quarantined_with_their_level(nonsense_run):
    """Four ticks at ten times the price: each quarantined, its reason naming the value and the level."""
    rows = _hour(nonsense_run[3], 13)
    assert len(rows) == 4
    assert all(r["reason"].startswith("price jump: bid 11.") and "rolling median level 1.1" in r["reason"] for r in rows)


def test_bi5_decompression_bomb_is_refused_as_one_row(nonsense_run):
    """A 28 KB hour that expands to 200 MB: refused before it is decoded, one row with the reason."""
    [row] = _hour(nonsense_run[3], 15)
    assert "15h_ticks.bi5" in row["reason"] and "decompression bomb" in row["reason"]


def test_garbage_hour_inside_the_bound_is_one_row_not_thousands(nonsense_run):
    """An hour of 50,000 zero-priced records: one quarantine row with the counts, not 50,000 rows."""
    [row] = _hour(nonsense_run[3], 17)
    assert "hour refused whole: 50,000 of its 50,000 ticks" in row["reason"] and row["detail"] == "50,000 records"


def test_quarantine_lists_only_the_damaged_hours(nonsense_run):
    """No false quarantine: the real hours of the day are untouched."""
    assert sorted(set(nonsense_run[3]["ts"].dt.hour().to_list())) == sorted(DAMAGE)


_BOMB_CHILD = """
import json, sys
from datetime import date
from lake_resources.sources.dukascopy.ingest import ticks_from_payloads
def peak_rss_mb():
    # VmHWM: this process's peak RSS (ru_maxrss would carry the forking test process's peak over exec)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
payloads = [open(p, 'rb').read() if p else None for p in json.loads(sys.argv[1])]
good, quarantine = ticks_from_payloads("EURUSD", date(2019, 2, 4), payloads, [f"{h:02d}h_ticks.bi5" for h in range(24)])
print(json.dumps({"ticks": good.height, "quarantine": quarantine.height, "reasons": quarantine["reason"].to_list(),
                  "peak_rss_mb": peak_rss_mb()}))
"""


def test_decompression_bomb_keeps_memory_bounded(tmp_path, datafeed_dir):
    """A real bomb (200 MB of zeros in 28 KB of LZMA) in every hour of a day, decoded in a fresh process:
    24 quarantine rows, no ticks, and the process never grows past a few hundred MB (the issue saw 5 GB)."""
    bomb = tmp_path / "bomb.bi5"
    bomb.write_bytes(_bomb(b""))
    assert bomb.stat().st_size < 40_000
    child = subprocess.run([sys.executable, "-c", _BOMB_CHILD, json.dumps([str(bomb)] * 24)], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    assert out["ticks"] == 0 and out["quarantine"] == 24
    assert all("decompression bomb" in r for r in out["reasons"])
    assert out["peak_rss_mb"] < 600, out  # the interpreter with the lake imported is ~120 MB; one bomb expanded is 200 MB


# ---------------------------------------------------------------------------------------------
# No false quarantine: the real fixture day and generated data
# ---------------------------------------------------------------------------------------------
def test_real_fixture_day_has_no_false_quarantine(day_ticks):
    """The real EURUSD 2019-02-04 (136,741 ticks): not one tick quarantined by the domain rules."""
    good, bad = split_bad_ticks(normalize_ticks(day_ticks, "EURUSD"), DAY, symbol="EURUSD")
    assert bad.height == 0 and good.height == day_ticks.height == 136_741


def test_generated_data_has_no_false_quarantine(tmp_path):
    """A generated fortnight of FX, metal, crypto ticks and vendor minute bars: nothing quarantined."""
    from lake_resources.generate import generate
    from lake_resources.sources.dukascopy.ingest import ticks_from_payloads
    from lake_resources.sources.vendor import LandingDirVendor

    symbols = ["EURUSD", "USDJPY", "XAUUSD", "BTCUSD", "AAPL"]
    first, last = date(2019, 3, 1), date(2019, 3, 14)
    generate(tmp_path, symbols, first, last, seed=11, ticks_per_day=20_000)
    vendor = LandingDirVendor(tmp_path, "sample")
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        for symbol in symbols[:-1]:
            paths = [tmp_path / "dukascopy" / bi5.hour_path(symbol, h) for h in bi5.day_hours(day)]
            payloads = [p.read_bytes() if p.exists() else None for p in paths]
            good, quarantine = ticks_from_payloads(symbol, day, payloads, [p.name for p in paths])
            assert quarantine.height == 0, (symbol, day, quarantine.head(3).to_dicts())
        parsed = vendor.parse_pulls("bars", vendor.fetch("bars", "AAPL", day))
        assert parsed.quarantine == [], (day, parsed.quarantine[:3])


# ---------------------------------------------------------------------------------------------
# Vendor pulls: minute bars that are not minutes, duplicate keys, price jumps
# ---------------------------------------------------------------------------------------------
VENDOR = "acme"
VDAY = "2019-02-04"
PULLED_AT = datetime(2019, 2, 4, 21, 5, tzinfo=timezone.utc)


def _bar(ts: str, price: float = 170.2, **fields) -> dict:
    return {"ts": ts, "open": price, "high": price + 0.3, "low": price - 0.3, "close": price, "volume": 1200, **fields}


def _minute(m: int) -> str:
    return f"{VDAY}T14:{m:02d}:00Z"


def _parse(payload: bytes):
    return parse_pull("bars", payload, pull_id="p1", location="landing/p1.json", day=VDAY, symbol="AAPL", vendor=VENDOR)


def _bars_pull(records: list) -> bytes:
    return make_pull(VENDOR, "bars", "AAPL", VDAY, PULLED_AT, records)


GOOD = [_bar(_minute(30)), _bar(_minute(31)), _bar(_minute(33))]


def test_bars_130ms_apart_are_refused_as_one_row():
    """The issue's vendor pull: bars 130 ms apart, far more than a day's 1,440 minutes: refused whole
    with one quarantine entry, nothing parsed."""
    start = datetime(2019, 2, 4, 10, tzinfo=timezone.utc)
    records = [_bar((start + timedelta(milliseconds=130 * i)).isoformat().replace("+00:00", "Z")) for i in range(5_000)]
    result = _parse(_bars_pull(records))
    [entry] = result.quarantine
    assert entry.record_index is None and entry.reason == "5,000 records: a day holds at most 1,440 minute bars"
    assert result.frame.height == 0


@pytest.mark.parametrize(("extra", "reason"), [
    ([_bar(f"{VDAY}T14:32:00.130Z")], "ts is not on a minute boundary"),
    ([_bar(f"{VDAY}T14:34:30Z")], "ts is not on a minute boundary"),
    ([_bar(_minute(40), price=17020.0)], "price jump: open 17020.0 is more than 2.0x away from its rolling median level 170.2"),
], ids=["sub-second", "half-minute", "price-x100"])
def test_implausible_bar_is_quarantined_alone(extra, reason):
    """One bar off the minute grid, or at a hundred times the price: that record quarantined with the
    reason, the good bars parsed."""
    result = _parse(_bars_pull(GOOD + extra))
    [entry] = result.quarantine
    assert entry.record_index == 3 and entry.reason == reason
    assert result.frame["close"].to_list() == [170.2] * 3


def test_repeated_minute_quarantines_every_copy():
    """Two bars for one minute in one pull: which is right cannot be told, so both are quarantined."""
    result = _parse(_bars_pull(GOOD + [_bar(_minute(31), price=171.0)]))
    assert [(q.record_index, q.reason) for q in result.quarantine] == [
        (1, "minute repeated: more than one bar for this minute"), (3, "minute repeated: more than one bar for this minute")]
    assert result.frame["ts"].dt.minute().to_list() == [30, 33]


def test_duplicate_json_key_in_a_record_is_quarantined():
    """``{"close": 170.2, "close": 17020}``: json.loads would keep the last value silently; the record
    is quarantined naming the key, the others parsed."""
    payload = _bars_pull(GOOD + [_bar(_minute(34))])
    doctored = payload.replace(b'"close":170.2,"volume":1200}]', b'"close":170.2,"close":17020.0,"volume":1200}]')
    assert doctored != payload
    result = _parse(doctored)
    [entry] = result.quarantine
    assert entry.record_index == 3 and entry.reason.startswith("duplicate JSON key(s) 'close' in the record")
    assert result.frame.height == 3


def test_duplicate_json_key_in_the_envelope_refuses_the_pull():
    """Two ``symbol`` keys in the envelope: the whole pull is refused, naming the key."""
    payload = _bars_pull(GOOD).replace(b'"symbol":"AAPL",', b'"symbol":"AAPL","symbol":"MSFT",')
    result = _parse(payload)
    [entry] = result.quarantine
    assert entry.record_index is None and entry.reason.startswith("envelope: duplicate JSON key(s) 'symbol'")


@pytest.mark.data_loss
def test_bars_1m_takes_only_real_minutes_from_vendor_pulls(tmp_path, dagster_defs):
    """Through ``raw_vendor`` and ``bars_1m``: a good pull, the 130 ms pull, and a pull with one
    misaligned bar: bars_1m holds the good minutes only, and each refusal is in the quarantine."""
    landing = tmp_path / "landing"
    start = datetime(2019, 2, 4, 15, tzinfo=timezone.utc)
    fast = [_bar((start + timedelta(milliseconds=130 * i)).isoformat().replace("+00:00", "Z")) for i in range(2_000)]
    pulls = {"a-good": GOOD, "b-fast": fast, "c-one-off": [_bar(_minute(50)), _bar(f"{VDAY}T14:51:00.130Z")]}
    for pull_id, records in pulls.items():
        write_pull(landing, _bars_pull(records), vendor=VENDOR, feed="bars", symbol="AAPL", day=VDAY, pull_id=pull_id)
    home = tmp_path / "lake"
    result = materialize(dagster_defs, ["raw_vendor", "bars_1m"], lake_resources_for(home, landing=landing),
                         key=f"{VDAY}|AAPL")
    assert result.success, failure_messages(result)
    client = LakeClient(LakeSettings(home=home, landing=landing))
    bars = client.read("bars_1m", symbols="AAPL")
    assert bars["ts"].dt.strftime("%H:%M:%S").to_list() == ["14:30:00", "14:31:00", "14:33:00", "14:50:00"]
    assert (bars["ts"].dt.epoch("ns") % 60_000_000_000 == 0).all()
    quarantine = client.sql("select source, record, reason from quarantine where stage = 'vendor' order by source")
    assert [(Path(s).name, r, reason) for s, r, reason in quarantine.iter_rows()] == [
        ("b-fast.json", None, "2,000 records: a day holds at most 1,440 minute bars"),
        ("c-one-off.json", 1, "ts is not on a minute boundary"),
    ]


# ---------------------------------------------------------------------------------------------
# Odd landing file names (issue 13, item 8): through the landing sensor and the run it requests
# ---------------------------------------------------------------------------------------------
LONG_VENDOR = "v" * 63  # the longest vendor name the landing accepts
LONG_PULL_ID = "20190204T210500Z-" + "p" * 100  # a valid pull id; with that vendor the raw name passes 128


@pytest.mark.data_loss
def test_odd_landing_file_names_do_not_fail_the_vendor_day(tmp_path):
    """A landing day with generated good pulls, a pull named ``v1..2.json`` and a long vendor name with a
    long pull id: the sensor's run succeeds, ``v1..2`` is quarantined (kept raw) with the reason, the long
    one is stored under a valid derived name and parsed, and every good pull reaches its dataset."""
    import dagster as dg

    from lake_assets.definitions import defs
    from lake_assets.ingest.sensors import vendor_landing_sensor
    from lake_assets.partitions import date_symbol_partitions
    from lake_resources.catalog.validation import validate_partition_value
    from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource
    from lake_resources.generate import DEFAULT_VENDOR, generate
    from lake_resources.storage import Lake

    lake = LakeResource(home=str(tmp_path / "lake"))
    landing = lake.settings().landing_root
    generate(landing, ["AAPL"], VDAY, VDAY, seed=11)
    headline = {"ts": f"{VDAY}T15:00:00Z", "headline": "Odd name, good news"}
    odd_dir = landing / "vendor" / DEFAULT_VENDOR / "headlines" / VDAY / "AAPL"
    (odd_dir / "v1..2.json").write_bytes(make_pull(DEFAULT_VENDOR, "headlines", "AAPL", VDAY, PULLED_AT, [headline]))
    long_headline = {"ts": f"{VDAY}T16:00:00Z", "headline": "Long vendor, long pull id"}
    write_pull(landing, make_pull(LONG_VENDOR, "headlines", "AAPL", VDAY, PULLED_AT, [long_headline]),
               vendor=LONG_VENDOR, feed="headlines", symbol="AAPL", day=VDAY, pull_id=LONG_PULL_ID)
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake),
                 "dukascopy": DukascopyResource(url="file:///nonexistent-datafeed", lake=lake)}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        sensed = vendor_landing_sensor(dg.build_sensor_context(instance=instance, resources={"lake": lake}))
        [request] = sensed.run_requests
        assert request.partition_key == f"{VDAY}|AAPL"
        run = dg.materialize([*defs.assets, *defs.asset_checks], selection=request.asset_selection,
                             tags={**request.tags, **date_symbol_partitions.get_tags_for_partition_key(request.partition_key)},
                             resources=resources, instance=instance, raise_on_error=False)
        assert run.success, failure_messages(run)
        again = vendor_landing_sensor(dg.build_sensor_context(instance=instance, cursor=None, resources={"lake": lake}))
        assert not again.run_requests  # everything, the odd names included, is captured as it is

    client = LakeClient(lake.settings())
    index = client.read("raw_vendor", symbols="AAPL")
    status = dict(zip(index["pull_id"], index["status"]))
    assert status.pop("v1..2") == "quarantined" and status.pop(LONG_PULL_ID) == "ok"
    assert set(status.values()) == {"ok"} and len(status) == 3  # the generated bars, greeks, headlines
    store = Lake(lake.settings())
    for raw_file in index["raw_file"]:
        assert store.raw.get_file(raw_file)  # every pull kept raw, the refused one too
        validate_partition_value(raw_file.rsplit("/", 1)[-1])
    quarantine = client.sql("select source, reason from quarantine where stage = 'vendor' and symbol = 'AAPL'")
    [(source, reason)] = quarantine.rows()
    assert source.endswith("/v1..2.json") and reason.startswith("landing file name: invalid partition value 'v1..2'")
    headlines = client.read("headlines", symbols="AAPL")
    assert "Long vendor, long pull id" in headlines["headline"].to_list()
    assert "Odd name, good news" not in headlines["headline"].to_list()
    assert client.read("bars_1m", symbols="AAPL").height == 390 and client.read("option_greeks", symbols="AAPL").height


@pytest.mark.parametrize("feed", ["bars", "greeks", "headlines"])
def test_raw_names_are_valid_for_any_landing_name(feed):
    """Property over many names: any vendor name the landing accepts and any pull id (odd characters,
    ``..``, 300 characters, empty) give a raw-zone name ``validate_partition_value`` accepts; distinct
    content under one pull id gives distinct names."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from lake_assets.ingest.vendor import raw_filename
    from lake_resources.catalog.validation import validate_partition_value

    vendors = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,62}\Z")
    digests = st.binary(min_size=1, max_size=8).map(lambda b: __import__("hashlib").sha256(b).hexdigest())

    @settings(max_examples=200, deadline=None)
    @given(vendors, st.text(max_size=300), digests, digests)
    def check(vendor, pull_id, one, other):
        name = raw_filename(vendor, feed, pull_id, one)
        assert validate_partition_value(name) == name
        if one != other:
            assert raw_filename(vendor, feed, pull_id, one, hashed=True) != raw_filename(vendor, feed, pull_id, other, hashed=True)

    check()


# ---------------------------------------------------------------------------------------------
# Stored data: the checks see what got past ingestion (another feed, a hand-written partition)
# ---------------------------------------------------------------------------------------------
def test_price_check_fails_on_stored_nonsense_with_samples(day_ticks, bars_1m):
    """Ticks at the u32 maximum and a bar at a hundred times its price, stored without going through the
    tick quarantine: ``prices_valid`` fails, its failing rows name each value and the level."""
    from lake_resources.transforms.quality import check_prices

    ticks = normalize_ticks(day_ticks, "EURUSD")
    assert check_prices(ticks).passed and check_prices(bars_1m).passed  # the real day: no false alarm
    nonsense = ticks.with_columns(bid=pl.when(pl.int_range(pl.len()).is_in([500, 501])).then(42949.67295)
                                  .otherwise(pl.col("bid")))
    nonsense = nonsense.with_columns(ask=pl.max_horizontal("bid", "ask"))
    outcome = check_prices(nonsense)
    assert not outcome.passed and outcome.failing_rows["row"].to_list() == [500, 501]
    assert outcome.failing_rows["problem"][0].startswith("price jump: bid 42949.67295 is more than 1.5x away")
    spiked = bars_1m.with_columns(*(pl.when(pl.int_range(pl.len()) == 700).then(pl.col(c) * 100).otherwise(pl.col(c))
                                    for c in ("open", "high", "low", "close")))
    outcome = check_prices(spiked)
    assert not outcome.passed and outcome.failing_rows["row"].to_list() == [700]


def test_timestamp_check_fails_on_stored_bars_off_the_minute(bars_1m):
    """A stored bars partition with a bar 130 ms past its minute: ``timestamps_in_day`` of a bars dataset
    fails naming the row; the real bars pass."""
    from lake_resources.transforms.quality import check_timestamps_in_day

    assert check_timestamps_in_day(bars_1m, DAY, bars=True).passed
    off = bars_1m.with_columns(ts=pl.when(pl.int_range(pl.len()) == 10).then(pl.col("ts") + pl.duration(milliseconds=130))
                               .otherwise(pl.col("ts")))
    outcome = check_timestamps_in_day(off, DAY, bars=True)
    assert not outcome.passed and dict(outcome.failing_rows.select("row", "problem").iter_rows()) == {
        10: "ts is not on a minute boundary"}

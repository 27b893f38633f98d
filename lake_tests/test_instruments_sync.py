"""`lake instruments sync` against a loopback server of the API, and the trading calendar judging each
instrument class by its own schedule: FX (the real EUR-USD detail: 17:00 New York, its own holidays),
crypto (24/7), an index and a stock (their sessions), through the gap check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from lake_resources.catalog.calendar import Market, expected_hours, market_of, trading_sessions
from lake_resources.transforms import quality

REPO = Path(__file__).resolve().parents[1]
UTC = timezone.utc


def _session(start: str, end: str, previous_start: bool = False) -> dict:
    return {"start": start, "previousDayStart": previous_start, "end": end, "previousDayEnd": False}


WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY")
DETAILS = {  # an index and a stock in their exchanges' hours (shapes as the real EUR-USD detail)
    "DEU.IDX-EUR": {"name": "DEU.IDX/EUR", "code": "DEU.IDX-EUR", "priceScale": 2, "defaultTimezone": "Europe/Berlin",
                    "holidays": [{"from": int(datetime(2019, 2, 6, tzinfo=UTC).timestamp() * 1000),
                                  "till": int(datetime(2019, 2, 7, tzinfo=UTC).timestamp() * 1000)}],
                    "tradeSchedule": [{"id": "x", "from": 0, "to": None,
                                       "sessions": {d: [_session("08:00:00", "22:00:00")] for d in WEEKDAYS}}],
                    "histories": [{"period": "TICK", "from": 1356998400000}]},
    "AAPL.US-USD": {"name": "AAPL.US/USD", "code": "AAPL.US-USD", "priceScale": 2, "defaultTimezone": "America/New_York",
                    "holidays": [], "tradeSchedule": [{"id": "y", "from": 0, "to": None, "sessions": {
                        d: [_session("09:30:00", "16:00:00")] for d in WEEKDAYS}}]},
}


@pytest.fixture
def synced(api_server, tmp_path, monkeypatch):
    root = api_server.root
    eur = json.loads((root / "instruments/EUR-USD").read_text())
    listing = [{"code": d["code"], "name": d["name"], "priceScale": d["priceScale"]} for d in (eur, *DETAILS.values())]
    (root / "instruments").rename(root / "instruments-details")
    (root / "instruments").write_text(json.dumps(listing))
    for code, detail in {"EUR-USD": eur, **DETAILS}.items():
        (root / "instruments-details" / code).write_text(json.dumps(detail))
    api_server.current["instruments"] = (root / "instruments").read_bytes()
    for code in ("EUR-USD", *DETAILS):
        api_server.current[f"instruments/{code}"] = (root / "instruments-details" / code).read_bytes()
    home = tmp_path / "lake"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "AWS_"))}
    env |= {"LAKE_HOME": str(home), "LAKE_DUKASCOPY_API": api_server.base}
    proc = subprocess.run([str(Path(sys.executable).parent / "lake"), "instruments", "sync", "--symbols",
                           "EURUSD,DEUIDXEUR,AAPLUSUSD"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "3 instruments listed" in proc.stdout and "details of 3" in proc.stdout
    path = home / "instruments_api.json"
    monkeypatch.setenv("LAKE_INSTRUMENTS_API", str(path))
    return json.loads(path.read_text())["instruments"]


def test_sync_stores_code_factor_scale_timezone_schedule_holidays_history(synced):
    eur = synced["EURUSD"]
    assert (eur["code"], eur["decimal_factor"], eur["price_scale"], eur["timezone"]) == (
        "EUR-USD", 100000, 5, "America/New_York")
    assert len(eur["holidays"]) == 25 and eur["schedule"][0]["sessions"]["MONDAY"][0]["start"] == "17:00:00"
    assert eur["history"]["tick"] == "2003-05-04T19:00:00.048000Z"
    assert synced["DEUIDXEUR"]["decimal_factor"] == 100
    assert len(synced) > 1000  # the shipped entries are kept


def _hours(symbol: str, day: date) -> list[int]:
    return expected_hours(symbol, day)


def test_fx_by_its_own_schedule_17h_new_york_and_its_own_holidays(synced):
    assert _hours("EURUSD", date(2019, 2, 8)) == list(range(22))  # Friday: closes 17:00 New York = 22:00 UTC
    assert _hours("EURUSD", date(2019, 2, 9)) == []  # Saturday
    assert _hours("EURUSD", date(2019, 2, 10)) == [22, 23]  # Sunday: opens 17:00 New York
    assert _hours("EURUSD", date(2019, 7, 12)) == list(range(21))  # summer: 17:00 New York = 21:00 UTC
    # Christmas 2019 by the instrument's holidays (closed 08:00-22:00 UTC), not the generic FX rule
    assert trading_sessions("EURUSD", date(2019, 12, 25)) == [
        (datetime(2019, 12, 25, tzinfo=UTC), datetime(2019, 12, 25, 8, tzinfo=UTC)),
        (datetime(2019, 12, 25, 22, tzinfo=UTC), datetime(2019, 12, 26, tzinfo=UTC))]


def test_crypto_trades_around_the_clock():
    assert market_of("BTCUSD") is Market.CRYPTO
    assert _hours("BTCUSD", date(2019, 2, 9)) == list(range(24))  # a Saturday


def test_index_and_stock_by_their_sessions_and_the_gap_check_judges_by_them(synced):
    assert market_of("DEUIDXEUR") is Market.SCHEDULE
    assert _hours("DEUIDXEUR", date(2019, 2, 4)) == list(range(7, 21))  # 08:00-22:00 Berlin, CET
    assert _hours("DEUIDXEUR", date(2019, 7, 1)) == list(range(6, 20))  # CEST
    assert _hours("DEUIDXEUR", date(2019, 2, 6)) == []  # its holiday
    assert _hours("DEUIDXEUR", date(2019, 2, 9)) == []
    assert _hours("AAPLUSUSD", date(2019, 2, 4)) == list(range(14, 21))  # 09:30-16:00 New York, EST
    day = date(2019, 2, 4)
    ts = [datetime(2019, 2, 4, h, 30, tzinfo=UTC) for h in range(7, 21) if h != 10]
    bars = pl.DataFrame({"ts": ts, "symbol": ["DEUIDXEUR"] * len(ts)}).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    outcome = quality.check_gaps(bars, "DEUIDXEUR", day)
    assert not outcome.passed and outcome.metadata["missing_hours"] == [10]
    full = pl.DataFrame({"ts": [datetime(2019, 2, 4, h, tzinfo=UTC) for h in range(7, 21)],
                         "symbol": ["DEUIDXEUR"] * 14}).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    assert quality.check_gaps(full, "DEUIDXEUR", day).passed


def test_without_a_synced_schedule_an_index_has_no_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("LAKE_HOME", str(tmp_path / "empty-lake"))
    monkeypatch.delenv("LAKE_INSTRUMENTS_API", raising=False)
    assert market_of("DEUIDXEUR") is Market.UNKNOWN
    with pytest.raises(ValueError, match="no trading-hours rule"):
        trading_sessions("DEUIDXEUR", date(2019, 2, 4))


def test_sync_refuses_an_instrument_code_that_would_escape_its_path(tmp_path):
    """Codes become URL and file path segments: a hostile list entry is refused, the catalogue untouched."""
    from lake_resources.sources.dukascopy.api import DukascopyApiSource
    from lake_resources.sources.dukascopy.instrument_sync import SyncError, sync

    base = tmp_path / "api"
    base.mkdir()
    (base / "instruments").write_text(json.dumps([{"code": "EUR-USD", "priceScale": 5},
                                                   {"code": "../../etc", "priceScale": 2}]))
    out = tmp_path / "catalogue.json"
    out.write_text(json.dumps({"instruments": {}}))
    with pytest.raises(SyncError, match=r"invalid instrument code '\.\./\.\./etc'"):
        sync(DukascopyApiSource(base), out)
    assert json.loads(out.read_text()) == {"instruments": {}}


def test_sync_from_a_base_without_instruments_fails_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "AWS_"))}
    env |= {"LAKE_HOME": str(tmp_path / "lake")}
    proc = subprocess.run([str(Path(sys.executable).parent / "lake"), "instruments", "sync", "--base",
                           tmp_path.as_uri(), "--symbols", "EURUSD"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"lake instruments sync: {tmp_path}/instruments: not found"]

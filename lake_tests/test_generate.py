"""Sample-data generator: determinism, exact datafeed/landing layout, market hours, decodable sensible data."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from lake_resources.catalog.calendar import Market, expected_hours, market_of, market_sessions, session_hours
from lake_resources.catalog.instruments import UnknownSymbolError, decimal_factor
from lake_resources.generate import generate, generate_day_payloads
from lake_resources.sources.dukascopy import bi5
from lake_resources.sources.dukascopy.datafeed import DukascopySource
from lake_resources.sources.vendor import LandingDirVendor

FRI, SAT, SUN, MON = date(2024, 1, 5), date(2024, 1, 6), date(2024, 1, 7), date(2024, 1, 8)
TICKS = 3000


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _hour_sizes(root: Path, symbol: str, day: date) -> list[int | None]:
    files = [root / "dukascopy" / bi5.hour_path(symbol, h) for h in bi5.day_hours(day)]
    return [f.stat().st_size if f.exists() else None for f in files]


def _day_ticks(root: Path, symbol: str, day: date) -> pl.DataFrame:
    fetched = DukascopySource(str(root / "dukascopy")).fetch_day(symbol, day)
    return bi5.decode_day_ticks([f.payload for f in fetched], day, decimal_factor(symbol))


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sample")
    summary = generate(
        out, ["EURUSD", "USDJPY", "XAUUSD", "BTCUSD", "AAPL", "MSFT"], FRI, MON, seed=7,
        ticks_per_day=TICKS, empty_hour_probability=0.0, layouts=("datafeed",),  # the API layout: test_api_layout
    )
    return out, summary


def test_same_seed_gives_the_same_bytes_and_days_do_not_depend_on_the_range(tmp_path: Path, sample):
    out, _ = sample
    symbols = ["EURUSD", "USDJPY", "XAUUSD", "BTCUSD", "AAPL", "MSFT"]
    again = generate(tmp_path / "again", symbols, FRI, MON, seed=7, ticks_per_day=TICKS, empty_hour_probability=0.0,
                     layouts=("datafeed",))
    assert _tree(tmp_path / "again") == _tree(out)
    assert again.ticks == sample[1].ticks

    other = generate(tmp_path / "other", ["EURUSD"], FRI, FRI, seed=8, ticks_per_day=TICKS, empty_hour_probability=0.0,
                     layouts=("datafeed",))
    theirs, ours = _tree(tmp_path / "other"), _tree(out)
    assert all(theirs[name] != ours[name] for name in theirs if theirs[name])  # every non-empty hour differs
    assert other.ticks[("EURUSD", FRI)] != sample[1].ticks[("EURUSD", FRI)]

    # Generating Monday alone gives Monday's files from the longer run (one stream per symbol-day).
    generate(tmp_path / "monday", ["EURUSD", "AAPL"], MON, MON, seed=7, ticks_per_day=TICKS, empty_hour_probability=0.0,
             layouts=("datafeed",))
    monday = _tree(tmp_path / "monday")
    assert len(monday) == 24 + 3 and all(ours[name] == data for name, data in monday.items())


def test_day_payloads_in_memory_equal_the_written_files(sample):
    out, _ = sample
    payloads = generate_day_payloads("EURUSD", FRI, TICKS, 7, empty_hour_probability=0.0)
    files = [(out / "dukascopy" / bi5.hour_path("EURUSD", h)).read_bytes() for h in bi5.day_hours(FRI)]
    assert payloads == files


def test_datafeed_layout_and_weekend_closure(sample, tmp_path: Path):
    out, summary = sample
    # Exact Dukascopy layout: zero-based month, two-digit day and hour.
    assert (out / "dukascopy/EURUSD/2024/00/05/00h_ticks.bi5").is_file()
    assert (out / "dukascopy/BTCUSD/2024/00/08/23h_ticks.bi5").is_file()

    fri, sat, sun, mon = (_hour_sizes(out, "EURUSD", d) for d in (FRI, SAT, SUN, MON))
    assert all(size > 0 for size in fri[:22]) and fri[22:] == [0, 0]  # closes Friday 22:00 UTC
    assert sat == [0] * 24
    assert sun[:22] == [0] * 22 and all(size > 0 for size in sun[22:])  # reopens Sunday 22:00 UTC
    assert all(size > 0 for size in mon)
    assert _hour_sizes(out, "XAUUSD", SAT) == [0] * 24
    assert all(size > 0 for size in _hour_sizes(out, "BTCUSD", SAT))  # crypto trades every day
    assert summary.ticks[("EURUSD", SAT)] == 0 and summary.ticks[("BTCUSD", SAT)] > 0
    tree = _tree(out)
    assert summary.files_written == len(tree) == 4 * 4 * 24 + 2 * (2 * 2 + 4)  # + bars/greeks weekdays, headlines daily
    assert summary.bytes_written == sum(len(data) for data in tree.values())

    # closed_hours="absent": no file at all for closed hours; random empty hours stay 0-byte files.
    generate(tmp_path, ["EURUSD"], FRI, SAT, seed=7, ticks_per_day=TICKS, closed_hours="absent", empty_hour_probability=0.5)
    fri_sizes, sat_sizes = _hour_sizes(tmp_path, "EURUSD", FRI), _hour_sizes(tmp_path, "EURUSD", SAT)
    assert sat_sizes == [None] * 24 and fri_sizes[22:] == [None, None]
    assert 0 in fri_sizes[:22] and any(s and s > 0 for s in fri_sizes[:22])


@pytest.mark.parametrize(
    ("symbol", "low", "high", "max_spread_bps"),
    [("EURUSD", 0.9, 1.4, 5), ("USDJPY", 85, 140, 5), ("XAUUSD", 1300, 2100, 20), ("BTCUSD", 15_000, 60_000, 60)],
)
def test_ticks_decode_with_sensible_prices_spreads_and_rates(sample, symbol: str, low: float, high: float, max_spread_bps: float):
    out, summary = sample
    ticks = _day_ticks(out, symbol, MON)
    assert ticks.height == summary.ticks[(symbol, MON)]
    assert 0.8 * TICKS <= ticks.height <= 1.2 * TICKS  # a full trading day at the configured rate
    day_start = datetime(2024, 1, 8, tzinfo=timezone.utc)
    assert ticks["ts"].is_sorted() and ticks["ts"].min() >= day_start and ticks["ts"].max() < day_start + timedelta(days=1)
    mid = (ticks["bid"] + ticks["ask"]) / 2
    assert low < mid.min() and mid.max() < high
    spread_bps = (ticks["ask"] - ticks["bid"]) / mid * 1e4
    assert spread_bps.min() > 0 and spread_bps.median() < max_spread_bps
    assert ticks["bid_volume"].min() > 0 and ticks["ask_volume"].min() > 0
    # Prices are whole points of the instrument's decimal factor.
    points = ticks["bid"] * decimal_factor(symbol)
    assert (points - points.round()).abs().max() < 1e-6

    # The walk is continuous across midnight: Monday opens near where Sunday closed.
    sunday = _day_ticks(out, symbol, SUN)
    last_close = ((sunday["bid"] + sunday["ask"]) / 2)[-1]
    assert abs(mid[0] / last_close - 1) < 0.01


def test_vendor_pulls_parse_cleanly_in_us_session_hours(sample):
    out, summary = sample
    connector = LandingDirVendor(out, "sample")
    new_york = ZoneInfo("America/New_York")
    for day in (FRI, MON):
        bars = connector.parse_pulls("bars", connector.fetch("bars", "AAPL", day))
        assert bars.quarantine == [] and bars.frame.height == 390
        local = bars.frame["ts"].dt.convert_time_zone("America/New_York")
        assert local.min().time() == datetime(2024, 1, 1, 9, 30).time()
        assert local.max().time() == datetime(2024, 1, 1, 15, 59).time()
        assert bars.frame["ts"].min() == datetime(day.year, day.month, day.day, 9, 30, tzinfo=new_york)
        frame = bars.frame
        assert (frame["low"] <= frame["open"]).all() and (frame["high"] >= frame["close"]).all()
        assert 100 < frame["close"].min() and frame["close"].max() < 300
        assert summary.vendor_records[("bars", "AAPL", day)] == 390

        greeks = connector.parse_pulls("greeks", connector.fetch("greeks", "MSFT", day))
        assert greeks.quarantine == [] and greeks.frame.height == 13 * 3 * 11 * 2
        calls = greeks.frame.filter(pl.col("right") == "C")
        puts = greeks.frame.filter(pl.col("right") == "P")
        assert calls["delta"].is_between(0, 1).all() and puts["delta"].is_between(-1, 0).all()
        assert calls["delta"].mean() > 0.2 and puts["delta"].mean() < -0.2
        assert greeks.frame["iv"].min() > 0 and greeks.frame["iv"].max() < 1
        assert (greeks.frame["expiry"] >= day).all()

    for day in (SAT, SUN):  # no session: no bars or greeks pulls, but news still happens
        assert connector.fetch("bars", "AAPL", day) == [] and connector.fetch("greeks", "AAPL", day) == []
    for day in (FRI, SAT, SUN, MON):
        news = connector.parse_pulls("headlines", connector.fetch("headlines", "AAPL", day))
        assert news.quarantine == [] and news.frame.height == summary.vendor_records[("headlines", "AAPL", day)]
        assert all("AAPL" in symbols for symbols in news.frame["symbols"].to_list())


def test_refuses_symbols_without_ticks_and_bad_ranges(tmp_path: Path):
    with pytest.raises(ValueError, match="AAPL is a vendor symbol"):
        generate_day_payloads("AAPL", MON, 100, 0)
    with pytest.raises(UnknownSymbolError, match="unknown symbol 'NOPE'"):
        generate(tmp_path, ["NOPE"], MON, MON)
    with pytest.raises(ValueError, match="is before start"):
        generate(tmp_path, ["EURUSD"], MON, FRI)
    with pytest.raises(ValueError, match="outside the generator's calendar"):
        generate_day_payloads("EURUSD", date(1999, 12, 31), 100, 0)


SUMMER_WEEK = [date(2019, 7, 1) + timedelta(days=i) for i in range(7)]  # Mon..Sun, New York on EDT (UTC-4)
WINTER_WEEK = [date(2019, 2, 4) + timedelta(days=i) for i in range(7)]  # Mon..Sun, New York on EST (UTC-5)


def _hours_with_ticks(root: Path, symbol: str, day: date) -> list[int]:
    return [h for h, size in enumerate(_hour_sizes(root, symbol, day)) if size]


@pytest.mark.parametrize(("week", "roll"), [(SUMMER_WEEK, 21), (WINTER_WEEK, 22)], ids=["summer", "winter"])
def test_generated_hours_follow_the_calendar(tmp_path: Path, week: list[date], roll: int):
    """Every hour the calendar says is open has a file, with ticks unless the generator chose the hour
    empty (a 0-byte file); no hour it says is closed has a file, and every tick lies inside a session.
    USA500IDXUSD has no calendar rule: it is generated on FX hours."""
    symbols = ["EURUSD", "XAUUSD", "BTCUSD", "USA500IDXUSD"]
    options = {"seed": 5, "ticks_per_day": 2000, "closed_hours": "absent"}
    summary = generate(tmp_path / "some-empty", symbols, week[0], week[-1], empty_hour_probability=0.05, **options)
    generate(tmp_path / "none-empty", symbols, week[0], week[-1], empty_hour_probability=0.0, **options)
    open_total = chosen_empty = 0
    for symbol in symbols:
        market = Market.FX if market_of(symbol) is Market.UNKNOWN else market_of(symbol)
        for day in week:
            sessions = market_sessions(market, day)
            open_hours = session_hours(sessions, day)
            sizes = _hour_sizes(tmp_path / "some-empty", symbol, day)
            assert [h for h, size in enumerate(sizes) if size is not None] == open_hours, (symbol, day)
            open_total += len(open_hours)
            chosen_empty += sizes.count(0)
            assert _hours_with_ticks(tmp_path / "none-empty", symbol, day) == open_hours, (symbol, day)
            ts = _day_ticks(tmp_path / "some-empty", symbol, day)["ts"]
            assert ts.len() == summary.ticks[(symbol, day)]
            in_session = [(ts >= start) & (ts < end) for start, end in sessions]
            assert ts.len() == 0 or pl.select(pl.any_horizontal(in_session).all()).item(), (symbol, day)
    assert 0 < chosen_empty < 0.15 * open_total  # the random empty hours are a few, and 0-byte files

    # FX's week ends Friday and starts Sunday at 17:00 New York: 21:00 UTC in summer, 22:00 in winter.
    friday, saturday, sunday = week[4:7]
    assert _hours_with_ticks(tmp_path / "none-empty", "EURUSD", friday) == list(range(roll))
    assert _hours_with_ticks(tmp_path / "none-empty", "EURUSD", saturday) == []
    assert _hours_with_ticks(tmp_path / "none-empty", "EURUSD", sunday) == list(range(roll, 24))
    assert _hours_with_ticks(tmp_path / "none-empty", "BTCUSD", saturday) == list(range(24))


def test_christmas_session_is_closed_in_generated_data(tmp_path: Path):
    christmas = date(2019, 12, 25)
    generate(tmp_path, ["EURUSD"], christmas, christmas, seed=5, ticks_per_day=2000, empty_hour_probability=0.0)
    assert _hours_with_ticks(tmp_path, "EURUSD", christmas) == expected_hours("EURUSD", christmas) == [22, 23]


def test_lake_generate_prints_plain_text_or_json(tmp_path):
    """``lake generate`` prints its summary as plain text (it printed a quoted Python string), and as
    JSON with ``--json``."""
    import json
    import subprocess
    import sys

    def run_lake(args, env, cwd):
        return subprocess.run([str(Path(sys.executable).parent / "lake"), *args], env={"PATH": "/usr/bin:/bin", **env},
                              cwd=cwd, capture_output=True, text=True, timeout=120)

    base = ["generate", "--symbols", "EURUSD", "--start", "2019-02-04", "--end", "2019-02-04", "--ticks-per-day", "50"]
    text = run_lake([*base, "--out", str(tmp_path / "a")], {"LAKE_HOME": str(tmp_path / "lake")}, tmp_path)
    assert text.returncode == 0, text.stderr
    assert not text.stdout.startswith('"') and "ticks" in text.stdout and str(tmp_path / "a") in text.stdout
    as_json = run_lake([*base, "--out", str(tmp_path / "b"), "--json"], {"LAKE_HOME": str(tmp_path / "lake")}, tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    # 24 BI5 hours, the same 24 hours in the JSON data API layout, and its BID/ASK minute, hour and day candles
    assert summary["files_written"] == 24 + 24 + 2 * 3 and set(summary["ticks"]) == {"EURUSD|2019-02-04"}

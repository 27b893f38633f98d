"""Trading hours per market, in UTC, for gap checks: when should an instrument have data?

Simple, stated rules (not an exchange calendar):

- FX and metals (``Market.FX``): open around the clock except from Friday 17:00 New York time to
  Sunday 17:00 New York time (21:00/22:00 UTC depending on US daylight saving), and closed for the
  Christmas and New Year sessions: 17:00 New York on Dec 24 to 17:00 on Dec 25, and 17:00 on Dec 31
  to 17:00 on Jan 1.
- Crypto (``Market.CRYPTO``): 24/7.
- Vendor US equities (``Market.US_EQUITY``): weekdays 09:30-16:00 New York time, i.e. 13:30-20:00
  UTC in summer and 14:30-21:00 UTC in winter (the session the vendor pulls and
  ``lake_resources.generate`` cover; US market holidays are not modelled).

``lake_resources.generate`` draws its sample ticks from these same sessions (``market_sessions``), so
generated data and the gap checks agree in summer and in winter.
- Anything else (index and stock CFDs, ...): ``Market.UNKNOWN``, no rule; callers must not guess.

**An instrument's own schedule wins.** Once ``lake instruments sync`` has stored an instrument's trading
schedule, timezone and holidays from the Dukascopy API (:mod:`lake_resources.catalog.api_instruments`), its
sessions come from them (:func:`schedule_sessions`): each weekday's sessions in the instrument's
timezone, minus its holidays. A symbol with no class rule but a known schedule is ``Market.SCHEDULE``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from zoneinfo import ZoneInfo

from lake_resources.catalog.instruments import instrument

NEW_YORK = ZoneInfo("America/New_York")
FX_ROLL = time(17, 0)  # the FX day ends at 17:00 New York
EQUITY_SESSION_NEW_YORK = (time(9, 30), time(16, 0))

# ISO 4217 codes Dukascopy quotes, plus the precious metals priced like currencies
_CURRENCIES = frozenset(
    "AED AUD CAD CHF CNH CZK DKK EUR GBP HKD HUF ILS JPY MXN NOK NZD PLN RON SAR SEK SGD THB TRY "
    "USD ZAR RUB XAU XAG XPT XPD".split()
)
# Base codes of the crypto pairs in the catalogue (BTCUSD, ETHEUR, ...)
_CRYPTO = frozenset("ADA AVE BAT BCH BTC CMP DSH ENJ EOS ETH LNK LTC MAT MKR TRX UNI XLM YFI".split())
_PAIR = re.compile(r"^([A-Z]{3})([A-Z]{3})$")

Interval = tuple[datetime, datetime]


class Market(str, Enum):
    FX = "fx"  # currencies and metals
    CRYPTO = "crypto"
    US_EQUITY = "us_equity"
    SCHEDULE = "schedule"  # no class rule, but the instrument's own schedule is known (lake instruments sync)
    UNKNOWN = "unknown"


def market_of(symbol: str) -> Market:
    """Classify a catalogue symbol (raises ``UnknownSymbolError`` for one the catalogue lacks)."""
    inst = instrument(symbol)
    if inst.source == "vendor":
        return Market.US_EQUITY
    pair = _PAIR.match(inst.symbol)
    if pair:
        base, quote = pair.groups()
        if base in _CRYPTO:
            return Market.CRYPTO
        if base in _CURRENCIES and quote in _CURRENCIES:
            return Market.FX
    return Market.SCHEDULE if own_schedule(inst.symbol) is not None else Market.UNKNOWN


def _utc_day(day: date) -> Interval:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def _new_york(day: date, at: time = FX_ROLL) -> datetime:
    return datetime.combine(day, at, tzinfo=NEW_YORK).astimezone(timezone.utc)


def fx_closures(day: date) -> list[Interval]:
    """The FX closures (UTC) that could overlap the UTC day ``day``."""
    closures = []
    for offset in range(-7, 3):
        friday = day + timedelta(days=offset)
        if friday.weekday() == 4:
            closures.append((_new_york(friday), _new_york(friday + timedelta(days=2))))
    for year in (day.year - 1, day.year):
        closures.append((_new_york(date(year, 12, 24)), _new_york(date(year, 12, 25))))
        closures.append((_new_york(date(year, 12, 31)), _new_york(date(year + 1, 1, 1))))
    return sorted(closures)


def _subtract(window: Interval, holes: list[Interval]) -> list[Interval]:
    pieces = [window]
    for hole_start, hole_end in holes:
        next_pieces = []
        for start, end in pieces:
            if hole_end <= start or hole_start >= end:
                next_pieces.append((start, end))
                continue
            if start < hole_start:
                next_pieces.append((start, hole_start))
            if hole_end < end:
                next_pieces.append((hole_end, end))
        pieces = next_pieces
    return pieces


def market_sessions(market: Market, day: date) -> list[Interval]:
    """The open intervals of ``market``'s rule within the UTC day ``day`` (UTC, half-open), in time order.

    Raises ``ValueError`` for ``Market.UNKNOWN``: it has no rule here.
    """
    window = _utc_day(day)
    if market is Market.CRYPTO:
        return [window]
    if market is Market.FX:
        return _subtract(window, fx_closures(day))
    if market is Market.US_EQUITY:
        if day.weekday() >= 5:
            return []
        open_, close = (_new_york(day, t) for t in EQUITY_SESSION_NEW_YORK)
        return [(open_, close)]
    raise ValueError(f"no trading-hours rule for market {market.value}")


def trading_sessions(symbol: str, day: date) -> list[Interval]:
    """The symbol's open intervals within the UTC day ``day`` (UTC, half-open), in time order.

    Raises ``ValueError`` for a ``Market.UNKNOWN`` symbol: it has no rule here.
    """
    schedule = own_schedule(symbol)
    if schedule is not None:
        return schedule_sessions(schedule, day)
    market = market_of(symbol)
    if market is Market.UNKNOWN:
        raise ValueError(f"no trading-hours rule for {symbol} (market {market.value}); cannot say when it trades")
    return market_sessions(market, day)


_WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def own_schedule(symbol: str):
    """The instrument's own schedule from the API catalogue (an ``ApiInstrument`` with schedule and
    timezone), or None when not known."""
    from lake_resources.catalog.api_instruments import api_catalogue

    inst = api_catalogue().get(symbol.upper())
    return inst if inst is not None and inst.schedule and inst.timezone else None


def _at(day: date, clock: str, tz: ZoneInfo) -> datetime:
    if clock.startswith("24:"):  # end of the day
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(timezone.utc)
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=tz).astimezone(timezone.utc)


def _merge(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def schedule_sessions(inst, day: date) -> list[Interval]:
    """Open intervals (UTC, half-open, in time order) within the UTC day ``day`` of an instrument's own
    ``tradeSchedule`` (sessions per weekday in its timezone; ``previousDayStart``/``previousDayEnd``
    put an end on the day before), minus its holidays."""
    tz = ZoneInfo(inst.timezone)
    window = _utc_day(day)
    found: list[Interval] = []
    for entry in inst.schedule:
        valid_from = entry.get("from")
        valid_to = entry.get("to")
        lo = datetime.fromtimestamp(valid_from / 1000, tz=timezone.utc) if valid_from is not None else window[0]
        hi = datetime.fromtimestamp(valid_to / 1000, tz=timezone.utc) if valid_to is not None else window[1]
        for offset in (-1, 0, 1, 2):  # local days whose sessions can reach into this UTC day
            local = day + timedelta(days=offset)
            for s in (entry.get("sessions") or {}).get(_WEEKDAYS[local.weekday()], []):
                start = _at(local - timedelta(days=1) if s.get("previousDayStart") else local, s["start"], tz)
                end = _at(local - timedelta(days=1) if s.get("previousDayEnd") else local, s["end"], tz)
                if end <= start:
                    end += timedelta(days=1)
                start, end = max(start, lo, window[0]), min(end, hi, window[1])
                if start < end:
                    found.append((start, end))
    holidays = [(datetime.fromtimestamp(a / 1000, tz=timezone.utc), datetime.fromtimestamp(b / 1000, tz=timezone.utc))
                for a, b in (inst.holidays or [])]
    return [piece for interval in _merge(found) for piece in _subtract(interval, holidays)]


def session_hours(sessions: list[Interval], day: date) -> list[int]:
    """UTC hours (0-23) of ``day`` that overlap one of ``sessions``."""
    start, _ = _utc_day(day)
    return [
        h
        for h in range(24)
        if any(s < start + timedelta(hours=h + 1) and e > start + timedelta(hours=h) for s, e in sessions)
    ]


def expected_hours(symbol: str, day: date) -> list[int]:
    """UTC hours (0-23) of ``day`` that overlap one of the symbol's sessions."""
    return session_hours(trading_sessions(symbol, day), day)

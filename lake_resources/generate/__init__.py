"""Realistic sample vendor data, deterministic given a seed.

- Dukascopy symbols (catalogue source "dukascopy"): hourly BI5 tick files in the exact datafeed layout
  under ``{out}/dukascopy/`` (``{SYMBOL}/{YYYY}/{MM zero-based}/{DD}/{HH}h_ticks.bi5``). Prices follow a
  random walk at the instrument's level (EURUSD ~1.1, USDJPY ~110, XAUUSD ~1300-2000, BTCUSD ~30000),
  mean-reverting over years so they stay there; spreads in basis points typical of the instrument
  class, wider at the 21-23h UTC rollover; tick arrival busiest in the London/New York overlap; integer
  points via the catalogue's decimal factor. Ticks fall only in the hours :mod:`lake_resources.catalog.calendar`
  says are open (one source of truth with the gap checks): FX and metals close from Friday 17:00 to
  Sunday 17:00 New York time (21:00 or 22:00 UTC with US daylight saving) and for the Christmas and New
  Year sessions; crypto trades every day; index and stock CFDs, for which the calendar has no rule, get
  FX hours. Closed hours are 0-byte files, or no files with ``closed_hours="absent"``. A few random open
  hours are empty (0-byte), as in the real feed.
- The same ticks in the JSON data API layout under ``{out}/dukascopy-api/`` (``ticks/{CODE}/{Y}/{M}/{D}/{H}``,
  :mod:`lake_resources.sources.dukascopy.api_layout`; closed hours as the empty form), plus the vendor's own BID/ASK candles
  computed from them (minutes per day, hours per month, days per year, over the generated days), so the
  demo and tests run either feed (``layouts``).
- Vendor equities (catalogue source "vendor"): JSON pulls in the landing layout of
  :mod:`lake_resources.sources.vendor` under ``{out}/vendor/...``: minute bars of the US session
  (09:30-16:00 New York time) on weekdays, Black-Scholes option greeks every 30 minutes of the session,
  and a few headlines per day.

Every symbol-day draws from its own random stream seeded by (seed, symbol, day), and day-to-day price
levels come from one walk per (seed, symbol) over a fixed calendar, so a day's files do not depend on
which other days or symbols are generated. Everything is vectorised with numpy; LZMA compression is
the cost, spread over threads (it releases the GIL). ``lzma_preset=None`` compresses exactly as
``bi5.encode_ticks`` does (like Dukascopy's files); a low preset (0) is ~4x faster for benchmark-sized
data and decodes identically.

Modules: ``profiles`` (instrument profiles, random streams), ``ticks`` (tick records, BI5 hours),
``vendor_data`` (vendor records), ``output`` (``generate``: the files). Everything is re-exported here.
"""

from lake_resources.generate.output import generate
from lake_resources.generate.profiles import CALENDAR_END, CALENDAR_START, DEFAULT_VENDOR, NEW_YORK, GenerateSummary
from lake_resources.generate.ticks import day_tick_records, generate_day_payloads

__all__ = [
    "CALENDAR_END",
    "CALENDAR_START",
    "DEFAULT_VENDOR",
    "GenerateSummary",
    "NEW_YORK",
    "day_tick_records",
    "generate",
    "generate_day_payloads",
]

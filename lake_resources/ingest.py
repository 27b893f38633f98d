"""Dukascopy ingestion as plain functions: fetch a symbol-day into the raw zone, decode it into ticks.

The ``raw_dukascopy``/``ticks`` assets and the benchmark's plain-function pipeline both call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone

import polars as pl

from lake_resources import bi5
from lake_resources.instruments import instrument
from lake_resources.storage import Lake
from lake_resources.transforms.ticks import normalize_ticks, split_bad_ticks

RAW_SOURCE = "dukascopy"
RAW_HOURS_SCHEMA = {
    "ts": pl.Datetime("ns", "UTC"), "symbol": pl.String, "hour": pl.Int8, "status": pl.String,
    "bytes": pl.Int64, "sha256": pl.String, "source": pl.String,
}
#: Columns of the ``quarantine`` dataset (every stage writes these).
QUARANTINE_SCHEMA = {
    "ts": pl.Datetime("ns", "UTC"), "stage": pl.String, "symbol": pl.String, "source": pl.String,
    "record": pl.Int64, "reason": pl.String, "detail": pl.String,
}


def raw_filename(hour: int) -> str:
    return f"{hour:02d}h_ticks.bi5"


def day_partition(symbol: str, day: date | str) -> tuple[tuple[str, str], ...]:
    return (("symbol", symbol), ("date", day if isinstance(day, str) else day.isoformat()))


def fetch_raw_day(lake: Lake, source, symbol: str, day: date) -> pl.DataFrame:
    """Fetch the day's 24 hourly files, keep present ones in the raw zone; returns the hour table."""
    rows = []
    for f in source.fetch_day(symbol, day):
        if f.status == "present":
            lake.put_raw(RAW_SOURCE, symbol, day, raw_filename(f.hour.hour), f.payload)
        rows.append({"ts": f.hour, "symbol": symbol, "hour": f.hour.hour, "status": f.status,
                     "bytes": len(f.payload), "sha256": f.sha256, "source": f.source})
    return pl.DataFrame(rows, schema=RAW_HOURS_SCHEMA)


def read_raw_day(lake: Lake, symbol: str, day: date, hours: pl.DataFrame) -> tuple[list[bytes | None], list[int]]:
    """The day's 24 payloads from the raw zone (None where the hour had no file), and the hours listed
    as present whose raw file is gone."""
    present = [int(h) for h in hours.filter(pl.col("status") == "present")["hour"]]
    payloads: list[bytes | None] = [None] * 24
    lost = []
    with ThreadPoolExecutor(max_workers=8) as pool:  # S3 GETs overlap; local reads are cheap either way
        for h, data in zip(present, pool.map(lambda h: lake.get_raw(RAW_SOURCE, symbol, day, raw_filename(h)), present)):
            if data is None:
                lost.append(h)
            payloads[h] = data
    return payloads, lost


#: Bad ticks of one hour listed one quarantine row each up to this many; beyond it the hour's bad ticks
#: are one row (with their count per reason), and if they are also most of the hour the whole hour is
#: refused: a file of garbage must not turn into millions of quarantine rows. The raw file keeps them all.
TICK_ROWS_PER_HOUR = 1_000


def _tick_rows(bad: pl.DataFrame) -> pl.DataFrame:
    return bad.select(
        "ts", pl.lit("ticks").alias("stage"), "symbol", pl.lit("decoded ticks").alias("source"),
        pl.lit(None, pl.Int64).alias("record"), "reason",
        pl.format("bid={} ask={} bid_volume={} ask_volume={}", "bid", "ask", "bid_volume", "ask_volume").alias("detail"),
    )


def _bad_ticks_by_hour(symbol: str, start: datetime, good: pl.DataFrame, bad: pl.DataFrame,
                       names: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(good ticks, quarantine rows)``: one row per bad tick, except in an hour with more than
    ``TICK_ROWS_PER_HOUR`` of them (see there)."""
    if bad.height <= TICK_ROWS_PER_HOUR:
        return good, _tick_rows(bad)
    hour = pl.col("ts").dt.hour().alias("__hour")
    bad_per_hour = dict(bad.group_by(hour).len().iter_rows())
    heavy = {h for h, n in bad_per_hour.items() if h is not None and n > TICK_ROWS_PER_HOUR}
    if not heavy:
        return good, _tick_rows(bad)
    good_per_hour = dict(good.group_by(hour).len().iter_rows())
    refused = {h for h in heavy if bad_per_hour[h] > good_per_hour.get(h, 0)}
    rows = []
    for h in sorted(heavy):
        counts = (bad.filter(hour == h)["reason"].str.replace(r"^price jump: .*", "price jump")
                  .value_counts(sort=True).iter_rows())
        listed = "; ".join(f"{reason}: {n:,}" for reason, n in counts)
        total = bad_per_hour[h] + good_per_hour.get(h, 0)
        if h in refused:
            reason = (f"{names[h]}: hour refused whole: {bad_per_hour[h]:,} of its {total:,} ticks break the "
                      f"tick rules ({listed})")
        else:
            reason = (f"{names[h]}: {bad_per_hour[h]:,} of {total:,} ticks refused ({listed}); too many to list "
                      "one by one, the raw file keeps them")
        rows.append({"ts": start.replace(hour=h), "stage": "ticks", "symbol": symbol, "source": names[h],
                     "record": None, "reason": reason, "detail": f"{bad_per_hour[h]:,} records"})
    if refused:
        good = good.filter(~hour.is_in(sorted(refused)))
    listed_one_by_one = _tick_rows(bad.filter(~hour.is_in(sorted(heavy)).fill_null(True)))
    return good, pl.concat([pl.DataFrame(rows, schema=QUARANTINE_SCHEMA), listed_one_by_one])


def ticks_from_payloads(
    symbol: str, day: date, payloads: Sequence[bytes | None], names: Sequence[str], lost_hours: Sequence[int] = ()
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode, normalize and split a day's payloads into ``(ticks, quarantine rows)``."""
    decoded, problems = bi5.decode_day_ticks_checked(payloads, day, instrument(symbol).decimal_factor, names=names)
    good, bad = split_bad_ticks(normalize_ticks(decoded, symbol), day=day, symbol=symbol)
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    good, bad_rows = _bad_ticks_by_hour(symbol, start, good, bad, names)
    rows = [
        {"ts": start.replace(hour=h), "stage": "ticks", "symbol": symbol, "source": names[h], "record": None,
         "reason": "raw file listed as present is missing from the raw zone", "detail": None}
        for h in lost_hours
    ] + [
        {"ts": start.replace(hour=p.hour), "stage": "ticks", "symbol": symbol, "source": p.name, "record": None,
         "reason": p.message, "detail": None if p.rejected_records is None else f"{p.rejected_records} records"}
        for p in problems
    ]
    quarantine = pl.DataFrame(rows, schema=QUARANTINE_SCHEMA)
    if bad_rows.height:
        quarantine = pl.concat([quarantine, bad_rows])
    return good, quarantine


def ticks_from_raw(lake: Lake, symbol: str, day: date, hours: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Ticks of a symbol-day from its raw files; stores the day's quarantine rows (possibly none)."""
    payloads, lost = read_raw_day(lake, symbol, day, hours)
    names = [lake.raw_relpath(RAW_SOURCE, symbol, day, raw_filename(h)) for h in range(24)]
    good, quarantine = ticks_from_payloads(symbol, day, payloads, names, lost)
    lake.write("quarantine", (("stage", "ticks"), *day_partition(symbol, day)), quarantine)
    return good, quarantine

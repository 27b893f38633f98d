"""Dukascopy ingestion as plain functions: fetch a symbol-day into the raw zone, decode it into ticks.

The ``raw_dukascopy``/``ticks`` assets and the benchmark's plain-function pipeline both call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone

import polars as pl

from lake_resources.catalog.instruments import instrument
from lake_resources.sources.dukascopy import api_codec as dukascopy_api
from lake_resources.sources.dukascopy import bi5
from lake_resources.storage import Lake
from lake_resources.transforms.ticks import normalize_ticks, split_bad_ticks

RAW_SOURCE = "dukascopy"
RAW_HOURS_SCHEMA = {
    "ts": pl.Datetime("ns", "UTC"), "symbol": pl.String, "hour": pl.Int8, "status": pl.String,
    "bytes": pl.Int64, "sha256": pl.String, "source": pl.String, "feed": pl.String,
}
FEEDS = ("api", "datafeed")
#: Largest decompressed API response read back from the raw zone (an hour of ticks is ~100 kB to ~30 MB).
MAX_API_RESPONSE_BYTES = 512 * 1024 * 1024
#: Columns of the ``quarantine`` dataset (every stage writes these).
QUARANTINE_SCHEMA = {
    "ts": pl.Datetime("ns", "UTC"), "stage": pl.String, "symbol": pl.String, "source": pl.String,
    "record": pl.Int64, "reason": pl.String, "detail": pl.String,
}


def raw_filename(hour: int, feed: str = "datafeed") -> str:
    """The raw-zone file of an hour: the BI5 file as served, or the API's JSON response zstd-compressed."""
    return f"{hour:02d}h_ticks.bi5" if feed == "datafeed" else f"{hour:02d}h_ticks.json.zst"


def hour_feeds(hours: pl.DataFrame) -> dict[int, str]:
    """Feed of each hour of a ``raw_dukascopy`` frame (partitions stored before the column: datafeed)."""
    feeds = hours["feed"] if "feed" in hours.columns else pl.Series([None] * hours.height, dtype=pl.String)
    return {int(h): (f or "datafeed") for h, f in zip(hours["hour"], feeds)}


def day_partition(symbol: str, day: date | str) -> tuple[tuple[str, str], ...]:
    return (("symbol", symbol), ("date", day if isinstance(day, str) else day.isoformat()))


def fetch_raw_day(lake: Lake, source, symbol: str, day: date) -> pl.DataFrame:
    """Fetch the day's 24 hourly files, keep present ones in the raw zone; returns the hour table."""
    from lake_resources.sources.vendor import compress_pull

    rows = []
    for f in source.fetch_day(symbol, day):
        if f.feed == "api" and f.payload:  # every API answer as received (empty ones too), zstd-compressed
            lake.put_raw(RAW_SOURCE, symbol, day, raw_filename(f.hour.hour, f.feed), compress_pull(f.payload))
        elif f.status == "present":
            lake.put_raw(RAW_SOURCE, symbol, day, raw_filename(f.hour.hour, f.feed), f.payload)
        rows.append({"ts": f.hour, "symbol": symbol, "hour": f.hour.hour, "status": f.status,
                     "bytes": len(f.payload), "sha256": f.sha256, "source": f.source, "feed": f.feed})
    return pl.DataFrame(rows, schema=RAW_HOURS_SCHEMA)


def read_raw_day(lake: Lake, symbol: str, day: date, hours: pl.DataFrame) -> tuple[list[bytes | None], list[int]]:
    """The day's 24 payloads from the raw zone (None where the hour had no file), and the hours listed
    as present whose raw file is gone."""
    from lake_resources.sources.vendor import decompress_pull

    present = [int(h) for h in hours.filter(pl.col("status") == "present")["hour"]]
    feeds = hour_feeds(hours)
    payloads: list[bytes | None] = [None] * 24
    lost = []

    def get(h: int) -> bytes | None:
        data = lake.get_raw(RAW_SOURCE, symbol, day, raw_filename(h, feeds[h]))
        if data is None or feeds[h] == "datafeed":
            return data
        try:
            return decompress_pull(data, max_bytes=MAX_API_RESPONSE_BYTES)
        except ValueError as exc:  # kept for the decoder to quarantine with the reason
            return f"raw zone copy unreadable: {exc}".encode()

    with ThreadPoolExecutor(max_workers=8) as pool:  # S3 GETs overlap; local reads are cheap either way
        for h, data in zip(present, pool.map(get, present)):
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


def decode_day(symbol: str, day: date, payloads: Sequence[bytes | None], names: Sequence[str],
               feeds: Sequence[str] | None = None) -> tuple[pl.DataFrame, list[bi5.HourProblem]]:
    """A day's hourly payloads decoded by their feed's codec (BI5 prices by the catalogue's factor, API
    prices by each response's multiplier) into one frame in time order, plus the hours' problems."""
    feeds = list(feeds) if feeds is not None else ["datafeed"] * 24
    api = [p if f == "api" else None for p, f in zip(payloads, feeds)]
    bi5_hours = [p if f != "api" else None for p, f in zip(payloads, feeds)]
    frames, problems = [], []
    if any(api):
        frame, found = dukascopy_api.decode_day_ticks_checked(api, day, names=names)
        frames.append(frame)
        problems += found
    if any(bi5_hours) or not frames:
        frame, found = bi5.decode_day_ticks_checked(bi5_hours, day, instrument(symbol).decimal_factor, names=names)
        frames.append(frame)
        problems += found
    if len(frames) == 1:
        return frames[0], problems
    return pl.concat(frames).sort("ts", maintain_order=True), sorted(problems, key=lambda p: p.hour)


def ticks_from_payloads(
    symbol: str, day: date, payloads: Sequence[bytes | None], names: Sequence[str], lost_hours: Sequence[int] = (),
    feeds: Sequence[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode, normalize and split a day's payloads into ``(ticks, quarantine rows)``."""
    decoded, problems = decode_day(symbol, day, payloads, names, feeds)
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
    feeds = hour_feeds(hours)
    names = [lake.raw_relpath(RAW_SOURCE, symbol, day, raw_filename(h, feeds.get(h, "datafeed"))) for h in range(24)]
    good, quarantine = ticks_from_payloads(symbol, day, payloads, names, lost,
                                           [feeds.get(h, "datafeed") for h in range(24)])
    lake.write("quarantine", (("stage", "ticks"), *day_partition(symbol, day)), quarantine)
    return good, quarantine

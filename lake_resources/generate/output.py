"""``generate``: sample data written to disk (BI5 datafeed, the JSON data API layout, vendor pulls)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lake_resources.catalog.instruments import catalogue, instrument
from lake_resources.catalog.validation import LakeValidationError, parse_date, validate_symbol
from lake_resources.generate.profiles import DEFAULT_VENDOR, GenerateSummary, _check_day
from lake_resources.generate.ticks import _encode_hour, _split_hours, day_tick_records
from lake_resources.generate.vendor_data import _headlines, _minute_bars, _option_greeks, _session_open_utc
from lake_resources.sources.dukascopy import api_codec, api_layout, bi5
from lake_resources.sources.vendor import make_pull, write_pull
from lake_resources.storage import write_atomic

# --------------------------------------------------------------------------------------- generate


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def generate(
    out_dir: Path | str,
    symbols: Iterable[str],
    start: date | str,
    end: date | str,
    seed: int = 0,
    *,
    ticks_per_day: int = 20_000,
    vendor: str = DEFAULT_VENDOR,
    empty_hour_probability: float = 0.01,
    closed_hours: Literal["empty", "absent"] = "empty",
    lzma_preset: int | None = None,
    threads: int | None = None,
    layouts: tuple[str, ...] = ("datafeed", "api"),
) -> GenerateSummary:
    """Write sample data for ``symbols`` over the UTC days ``start``..``end`` (inclusive) under ``out_dir``.

    ``layouts``: the Dukascopy layouts written, ``datafeed`` (BI5 under ``dukascopy/``) and/or ``api``
    (JSON under ``dukascopy-api/``, with candles).

    Dukascopy symbols get ``{out}/dukascopy/`` BI5 files; vendor symbols get ``{out}/vendor/{vendor}/``
    pulls of bars and greeks (weekdays) and headlines (every day). Files are written atomically.
    """
    out = Path(out_dir)
    start, end = parse_date(start), parse_date(end)
    if end < start:
        raise LakeValidationError(f"end {end} is before start {start}")
    if ticks_per_day < 0:  # checked before any file is written
        raise LakeValidationError(f"ticks_per_day must be >= 0, got {ticks_per_day}")
    _check_day(start)
    _check_day(end)
    if closed_hours not in ("empty", "absent"):
        raise ValueError(f"closed_hours must be 'empty' or 'absent', got {closed_hours!r}")
    instruments = [instrument(s) for s in dict.fromkeys(validate_symbol(s) for s in symbols)]
    summary = GenerateSummary(out_dir=out)
    days = _days(start, end)

    unknown = [x for x in layouts if x not in ("datafeed", "api")]
    if unknown:
        raise ValueError(f"layouts must be 'datafeed' and/or 'api', got {unknown}")
    minutes: dict[str, dict[str, list[np.ndarray]]] = {}  # symbol -> side -> minute candles (sec since epoch)

    def write_day(symbol: str, day: date, encoded: list[Future[bytes]], open_hours: np.ndarray, ticks: int,
                  recs: np.ndarray, counts: np.ndarray) -> None:
        for hour, future in zip(bi5.day_hours(day), encoded, strict=True):
            payload = future.result()
            if not payload and not open_hours[hour.hour] and closed_hours == "absent":
                continue
            if "datafeed" in layouts:
                _write(out / "dukascopy" / bi5.hour_path(symbol, hour), payload, summary)
        if "api" in layouts:
            _write_api_day(out / "dukascopy-api", symbol, day, recs, counts, open_hours, closed_hours, summary, minutes)
        summary.ticks[(symbol, day)] = ticks

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        pending: tuple | None = None
        for inst in (i for i in instruments if i.source == "dukascopy"):
            for day in days:
                recs, counts, open_hours = day_tick_records(
                    inst.symbol, day, ticks_per_day, seed, empty_hour_probability=empty_hour_probability
                )
                encoded = [pool.submit(_encode_hour, hour, lzma_preset) if "datafeed" in layouts else _done(b"")
                           for hour in _split_hours(recs, counts)]
                if pending:  # write the previous day while this one compresses
                    write_day(*pending)
                pending = (inst.symbol, day, encoded, open_hours, len(recs), recs, counts)
        if pending:
            write_day(*pending)
    for symbol, sides in minutes.items():
        _write_api_rollups(out / "dukascopy-api", symbol, sides, summary)

    # Headlines may also tag other vendor equities of the catalogue (not just the generated ones, so a
    # day's pulls do not depend on which symbols are generated together).
    peers = sorted(s for s, i in catalogue().items() if i.source == "vendor")
    for symbol in (i.symbol for i in instruments if i.source == "vendor"):
        for day in days:
            pulls: list[tuple[str, datetime, list[dict[str, Any]]]] = []
            if day.weekday() < 5:
                bars = _minute_bars(symbol, day, seed)
                close_utc = _session_open_utc(day) + timedelta(minutes=390)
                pulls.append(("bars", close_utc + timedelta(minutes=2), bars))
                pulls.append(("greeks", close_utc + timedelta(minutes=5), _option_greeks(symbol, day, seed, bars)))
            next_midnight = datetime.combine(day + timedelta(days=1), time(0, 10), timezone.utc)
            pulls.append(("headlines", next_midnight, _headlines(symbol, day, seed, peers)))
            for feed, pulled_at, records in pulls:
                payload = make_pull(vendor, feed, symbol, day, pulled_at, records)
                write_pull(
                    out, payload, vendor=vendor, feed=feed, symbol=symbol, day=day, pull_id=f"{pulled_at:%Y%m%dT%H%M%SZ}"
                )
                summary.files_written += 1
                summary.bytes_written += len(payload)
                summary.vendor_records[(feed, symbol, day)] = len(records)
    return summary


def _done(value: bytes) -> Future[bytes]:
    future: Future[bytes] = Future()
    future.set_result(value)
    return future


def _api_code(symbol: str) -> str | None:
    from lake_resources.catalog.api_instruments import NoApiCodeError, api_code

    try:
        return api_code(symbol)
    except NoApiCodeError:
        return None  # not served by the API: BI5 only


def _write_api_day(root: Path, symbol: str, day: date, recs: np.ndarray, counts: np.ndarray, open_hours: np.ndarray,
                   closed_hours: str, summary: GenerateSummary, minutes: dict) -> None:
    """A day's hours and minute candles in the API layout; keeps the minutes for the hour/day candles."""
    code = _api_code(symbol)
    if code is None:
        return
    multiplier = api_codec.multiplier_for(instrument(symbol).decimal_factor)
    for hour, hour_recs in zip(bi5.day_hours(day), _split_hours(recs, counts), strict=True):
        if not len(hour_recs) and not open_hours[hour.hour] and closed_hours == "absent":
            continue
        _write(root / api_codec.ticks_path(code, hour), api_layout.ticks_json(hour_recs, hour, multiplier), summary)
    hour_of_tick = np.repeat(np.arange(24), counts)
    day_sec = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())
    for side in ("BID", "ASK"):
        candles = api_layout.minute_candles(recs, hour_of_tick, side.lower())
        _write(root / api_codec.candles_path("minute", code, side, day),
               api_layout.candles_json(candles, day, "minute", multiplier), summary)
        minutes.setdefault(symbol, {}).setdefault(side, []).append((day_sec, candles))


def _write_api_rollups(root: Path, symbol: str, sides: dict, summary: GenerateSummary) -> None:
    """Hour candles per month and day candles per year of the generated days, from their minute candles."""
    code = _api_code(symbol)
    if code is None:
        return
    multiplier = api_codec.multiplier_for(instrument(symbol).decimal_factor)
    for side, days in sides.items():
        by_month: dict[date, list[np.ndarray]] = {}
        by_year: dict[date, list[np.ndarray]] = {}
        for day_sec, candles in days:
            day = datetime.fromtimestamp(day_sec, tz=timezone.utc).date()
            month, year = date(day.year, day.month, 1), date(day.year, 1, 1)
            for start, bucket, into in ((month, 3600, by_month), (year, 86400, by_year)):
                shifted = candles.copy()
                shifted["sec"] = candles["sec"] + (day_sec - int(datetime(start.year, start.month, start.day,
                                                                          tzinfo=timezone.utc).timestamp()))
                into.setdefault(start, []).append(api_layout.rollup_candles(shifted, 0, bucket))
        for kind, groups in (("hour", by_month), ("day", by_year)):
            for start, parts in groups.items():
                merged = np.concatenate(parts)
                _write(root / api_codec.candles_path(kind, code, side, start),
                       api_layout.candles_json(merged, start, kind, multiplier), summary)


def _write(path: Path, payload: bytes, summary: GenerateSummary) -> None:
    write_atomic(path, payload)
    summary.files_written += 1
    summary.bytes_written += len(payload)

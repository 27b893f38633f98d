"""BI5 decoding and tick storage figures.

Ours: ``bi5.decode_day_ticks`` (numpy structured records over the LZMA output, each hour decompressed
and converted in a thread pool) followed by ``normalize_ticks``: the canonical ticks frame. Baselines on
the same payloads: ``lzma.decompress`` alone (the floor: no decoder can beat decompression), and the
per-record decoder of the popular Dukascopy downloaders (duka, tickterial, findatapy) with the same
normalisation and the same product: ``struct.unpack`` per 20-byte record, then per tick a timezone-aware
``datetime`` (hour start + ``timedelta(milliseconds=)``), prices = points / decimal factor, mid and
spread, collected into the canonical ticks frame (through pyarrow, the fastest way measured from Python
objects to columns). Its frame must equal ours. The same loop stopped at Python tuples (no mid, spread
or frame: half the product) is timed too and reported in the figure's note.

The decode figures run on generated XAUUSD (``BenchConfig.codec_symbol``), the data the baselines of
``shared/NOTES.md`` were measured on; the Parquet size figure on the lake's symbol (EURUSD), as the
lake stores it.
"""

from __future__ import annotations

import json
import lzma
import struct
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pyarrow as pa

from lake_resources.bench.core import Figure, Scaling, log, median_times, speedup
from lake_resources.bench.workspace import Workspace
from lake_resources.catalog.instruments import decimal_factor
from lake_resources.sources.dukascopy import api_codec as dukascopy_api
from lake_resources.sources.dukascopy import api_layout, bi5
from lake_resources.storage import encode_parquet
from lake_resources.transforms.ticks import normalize_ticks

IDS = ("decode_1core", "decode_2cores", "decode_vs_struct", "decode_api_1core", "parquet_size")
_RECORD_FORMAT = ">IIIff"  # ms, ask, bid, ask volume, bid volume
RAW_RECORD_BYTES = struct.calcsize(_RECORD_FORMAT)
#: The per-record baseline's name in the table.
PER_RECORD_BASELINE = ("per-record `struct.unpack` decoder with the same normalisation (a tz-aware `datetime`, "
                       "prices, mid and spread per tick, to the same ticks frame), 1 core")


def lzma_only(payloads: Sequence[bytes | None]) -> int:
    """The floor: decompress every hour, nothing else. Returns the bytes produced."""
    return sum(len(lzma.decompress(p)) for p in payloads if p)


def per_record_decode_day(payloads: Sequence[bytes | None], day: date, decimal_factor: int,
                          symbol: str) -> pl.DataFrame:
    """The per-record baseline: the same normalisation as ours, per tick, to the same ticks frame.

    After ``lzma.decompress``, one ``struct.unpack(">IIIff", record)`` per 20-byte slice; per tick a
    timezone-aware ``datetime`` (the hour's start + ``timedelta(milliseconds=ms)``), prices divided by the
    decimal factor as Python floats, mid and spread; volumes as unpacked. The rows are then turned into
    columns through pyarrow (measured: about 2.5x faster than polars from tz-aware ``datetime`` objects).
    """
    factor = float(decimal_factor)
    unpack = struct.unpack
    rows: list[tuple[datetime, float, float, float, float, float, float]] = []
    for hour, payload in enumerate(payloads):
        if not payload:
            continue
        raw = lzma.decompress(payload)
        hour_start = datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)
        for offset in range(0, len(raw), RAW_RECORD_BYTES):
            ms, ask, bid, ask_volume, bid_volume = unpack(_RECORD_FORMAT, raw[offset:offset + RAW_RECORD_BYTES])
            bid_price, ask_price = bid / factor, ask / factor
            rows.append((hour_start + timedelta(milliseconds=ms), bid_price, ask_price, bid_volume, ask_volume,
                         (bid_price + ask_price) / 2.0, ask_price - bid_price))
    columns = list(zip(*rows)) if rows else [()] * 7
    table = pa.table({
        # datetimes are microsecond-exact; the ticks contract stores nanoseconds
        "ts": pa.array(columns[0], pa.timestamp("us", tz="UTC")).cast(pa.timestamp("ns", tz="UTC")),
        "symbol": pa.array([symbol] * len(rows), pa.large_string()),
        "bid": pa.array(columns[1], pa.float64()),
        "ask": pa.array(columns[2], pa.float64()),
        "bid_volume": pa.array(columns[3], pa.float32()),
        "ask_volume": pa.array(columns[4], pa.float32()),
        "mid": pa.array(columns[5], pa.float64()),
        "spread": pa.array(columns[6], pa.float64()),
    })
    return pl.from_arrow(table)


def ours_decode(payloads: Sequence[bytes | None], day: date, decimal_factor: int, symbol: str, threads: int) -> pl.DataFrame:
    return normalize_ticks(bi5.decode_day_ticks(payloads, day, decimal_factor, threads=threads), symbol)


def run(ws: Workspace, wanted: set[str]) -> list[Figure]:
    figures: list[Figure] = []
    if wanted & {"decode_1core", "decode_2cores", "decode_vs_struct"}:
        figures += _decode_figures(ws, wanted)
    if "decode_api_1core" in wanted:
        figures.append(_api_decode_figure(ws))
    if "parquet_size" in wanted:
        figures.append(_size_figure(ws))
    return figures


def json_loads_only(payloads: Sequence[bytes]) -> int:
    """The API feed's floor: ``json.loads`` of every hour's response, nothing else."""
    return sum(len(json.loads(p)["times"]) for p in payloads if p)


def _api_decode_figure(ws: Workspace) -> Figure:
    """The JSON data API decoder over the same generated day, its hours encoded as the API serves them."""
    cfg = ws.config
    day, symbol = ws.days[0], cfg.codec_symbol
    factor = decimal_factor(symbol)
    payloads = ws.codec_payloads(symbol)
    multiplier = dukascopy_api.multiplier_for(factor)
    responses = [api_layout.bi5_hour_json(p or b"", h, multiplier) for p, h in zip(payloads, bi5.day_hours(day))]
    ours, problems = dukascopy_api.decode_day_ticks_checked(responses, day)
    # Equality first: the API decoder gives the BI5 decoder's frame for the same ticks.
    if problems or not ours.equals(bi5.decode_day_ticks(payloads, day, factor, threads=1)):
        raise AssertionError("the API decoder and the BI5 decoder disagree on the same ticks")
    n = ours.height
    log(f"API decode: {n:,} {symbol} ticks in {sum(map(len, responses)) / 1e6:.1f} MB of JSON, {cfg.repeats} rounds")
    t = median_times({"ours": lambda: dukascopy_api.decode_day_ticks_checked(responses, day),
                      "loads": lambda: json_loads_only(responses)}, cfg.repeats, warmup=cfg.warmup,
                     budget=cfg.budget_seconds)
    return speedup("decode_api_1core", f"API JSON decode to the ticks columns, 1 core (generated {symbol}, "
                   f"{n / 1e6:.2f} M ticks)", "`json.loads` of the same bytes alone, 1 core", n, t["ours"], t["loads"],
                   target=0.7, note="ours = json.loads + numpy int64 cumulative sums, prices, volumes, one frame")


def _decode_figures(ws: Workspace, wanted: set[str]) -> list[Figure]:
    cfg = ws.config
    day, symbol = ws.days[0], cfg.codec_symbol
    factor = decimal_factor(symbol)
    payloads = ws.codec_payloads(symbol)
    one = ours_decode(payloads, day, factor, symbol, 1)
    n = one.height
    # Equality first: every decoder must produce the same frame, or its speed means nothing.
    if not ours_decode(payloads, day, factor, symbol, 2).equals(one):
        raise AssertionError("decode_day_ticks with 2 threads differs from 1 thread")
    if "decode_vs_struct" in wanted and not per_record_decode_day(payloads, day, factor, symbol).equals(one):
        raise AssertionError("the per-record baseline decoder and decode_day_ticks disagree")

    figures: list[Figure] = []
    fns = {"lzma": lambda: lzma_only(payloads)}
    if wanted & {"decode_1core", "decode_vs_struct"}:
        fns["ours_1"] = lambda: ours_decode(payloads, day, factor, symbol, 1)
    if "decode_2cores" in wanted:
        fns["ours_2"] = lambda: ours_decode(payloads, day, factor, symbol, 2)
    if "decode_vs_struct" in wanted:
        fns["per_record"] = lambda: per_record_decode_day(payloads, day, factor, symbol)
    log(f"BI5 decode: {n:,} {symbol} ticks, {cfg.repeats} rounds")
    t = median_times(fns, cfg.repeats, warmup=cfg.warmup, budget=cfg.budget_seconds)
    what = f"generated {symbol}, {n / 1e6:.2f} M ticks"
    if "decode_1core" in wanted:
        fig = speedup("decode_1core", f"BI5 decode + normalise, 1 core ({what})", "`lzma.decompress` alone, 1 core",
                      n, t["ours_1"], t["lzma"], target=0.9)
        if cfg.scaling:
            fig.scaling = _decode_scaling(ws)
        figures.append(fig)
    if "decode_2cores" in wanted:
        figures.append(speedup("decode_2cores", f"BI5 decode + normalise, 2 cores ({what})",
                               "`lzma.decompress` alone, 1 core", n, t["ours_2"], t["lzma"], target=1.6))
    if "decode_vs_struct" in wanted:
        figures.append(speedup("decode_vs_struct", f"BI5 decode + normalise, 1 core ({what})", PER_RECORD_BASELINE,
                               n, t["ours_1"], t["per_record"], target=8.0))
    return figures


def _size_figure(ws: Workspace) -> Figure:
    cfg = ws.config
    symbol = cfg.symbol
    ticks = ours_decode(ws.codec_payloads(symbol), ws.days[0], decimal_factor(symbol), symbol, 2)
    n = ticks.height
    size = len(encode_parquet(ticks))
    fig = Figure("parquet_size", f"tick Parquet size (generated {symbol}, {n / 1e6:.2f} M ticks, `encode_parquet`)",
                 "raw BI5 records", size / n, float(RAW_RECORD_BYTES), "B/tick", size / n / RAW_RECORD_BYTES, "<=", 0.5)
    if cfg.scaling:
        fig.scaling = _size_scaling(ws)
    return fig


def _feed_payloads(ws: Workspace, day: date) -> list[bytes | None]:
    out: list[bytes | None] = []
    for hour in bi5.day_hours(day):
        path = ws.feed_dir / bi5.hour_path(ws.symbol, hour)
        out.append(path.read_bytes() if path.exists() else None)
    return out


def _decode_scaling(ws: Workspace) -> Scaling:
    """Ours, 1 core, over the datafeed's first day and over all its days (same compression): the
    datafeed's symbol, as generating every day of the codec symbol too would double the set-up."""
    per_day = {day: _feed_payloads(ws, day) for day in ws.days}
    counts = {day: ours_decode(p, day, ws.factor, ws.symbol, 1).height for day, p in per_day.items()}

    def decode(days: list[date]) -> None:
        for day in days:
            ours_decode(per_day[day], day, ws.factor, ws.symbol, 1)

    first = ws.days[:1]
    log(f"BI5 decode scaling: 1 vs {len(ws.days)} days")
    t = median_times({"one": lambda: decode(first), "all": lambda: decode(ws.days)}, ws.config.slow_repeats,
                     warmup=False, budget=ws.config.budget_seconds)
    n1, nn = counts[ws.days[0]], sum(counts.values())
    return Scaling("ns/tick", t["one"] / n1 * 1e9, t["all"] / nn * 1e9, ws.config.days, n1, nn,
                   data=f"{ws.symbol} datafeed")


def _size_scaling(ws: Workspace) -> Scaling:
    sizes = {day: len(encode_parquet(ws.ticks(day))) for day in ws.days}
    n1 = ws.ticks(ws.days[0]).height
    nn = ws.tick_count(ws.days)
    return Scaling("B/tick", sizes[ws.days[0]] / n1, sum(sizes.values()) / nn, ws.config.days, n1, nn)

"""BI5 decoding and tick storage figures.

Ours: ``bi5.decode_day_ticks`` (numpy structured records over the LZMA output, hours in a thread
pool) followed by ``normalize_ticks``: the canonical ticks frame. Baselines on the same payloads:
``lzma.decompress`` alone (the floor: no decoder can beat decompression), and a per-record
``struct`` decoder doing the same normalisation in Python, as the popular Dukascopy downloaders
decode; its frame must equal ours.
"""

from __future__ import annotations

import lzma
import struct
from collections.abc import Sequence
from datetime import date, datetime, timezone

import polars as pl

from lake_resources import bi5
from lake_resources.bench.core import Figure, Scaling, log, median_times, speedup
from lake_resources.bench.workspace import Workspace
from lake_resources.storage import encode_parquet
from lake_resources.transforms.ticks import TICK_SCHEMA, normalize_ticks

IDS = ("decode_1core", "decode_2cores", "decode_vs_struct", "parquet_size")
_RECORD = struct.Struct(">IIIff")  # ms, ask, bid, ask volume, bid volume
_NS_PER_HOUR = 3_600_000_000_000
RAW_RECORD_BYTES = 20


def lzma_only(payloads: Sequence[bytes | None]) -> int:
    """The floor: decompress every hour, nothing else. Returns the bytes produced."""
    return sum(len(lzma.decompress(p)) for p in payloads if p)


def struct_decode_day(payloads: Sequence[bytes | None], day: date, decimal_factor: int, symbol: str) -> pl.DataFrame:
    """The per-record baseline: ``struct`` unpacking and Python arithmetic per tick, then one frame.

    ``iter_unpack`` is the fastest per-record form (one tuple per record, no slicing), so the
    baseline is as strong as a per-record decoder gets.

    Same normalisation as ours: epoch-ns UTC timestamps, prices = points / decimal factor, mid and
    spread, volumes as float32, the ticks contract's columns and dtypes.
    """
    factor = float(decimal_factor)
    day_ns = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) * 1_000_000_000
    ts: list[int] = []
    bids: list[float] = []
    asks: list[float] = []
    bid_volumes: list[float] = []
    ask_volumes: list[float] = []
    mids: list[float] = []
    spreads: list[float] = []
    for hour, payload in enumerate(payloads):
        if not payload:
            continue
        hour_ns = day_ns + hour * _NS_PER_HOUR
        for ms, ask_points, bid_points, ask_volume, bid_volume in _RECORD.iter_unpack(lzma.decompress(payload)):
            bid = bid_points / factor
            ask = ask_points / factor
            ts.append(hour_ns + ms * 1_000_000)
            bids.append(bid)
            asks.append(ask)
            bid_volumes.append(bid_volume)
            ask_volumes.append(ask_volume)
            mids.append((bid + ask) / 2.0)
            spreads.append(ask - bid)
    return pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
            "symbol": [symbol] * len(ts),
            "bid": bids,
            "ask": asks,
            "bid_volume": pl.Series(bid_volumes, dtype=pl.Float32),
            "ask_volume": pl.Series(ask_volumes, dtype=pl.Float32),
            "mid": mids,
            "spread": spreads,
        },
        schema=TICK_SCHEMA,
    )


def ours_decode(payloads: Sequence[bytes | None], day: date, decimal_factor: int, symbol: str, threads: int) -> pl.DataFrame:
    return normalize_ticks(bi5.decode_day_ticks(payloads, day, decimal_factor, threads=threads), symbol)


def run(ws: Workspace, wanted: set[str]) -> list[Figure]:
    cfg = ws.config
    day, symbol, factor = ws.days[0], ws.symbol, ws.factor
    payloads = ws.codec_payloads
    one = ours_decode(payloads, day, factor, symbol, 1)
    n = one.height
    # Equality first: every decoder must produce the same frame, or its speed means nothing.
    if not ours_decode(payloads, day, factor, symbol, 2).equals(one):
        raise AssertionError("decode_day_ticks with 2 threads differs from 1 thread")
    if "decode_vs_struct" in wanted and not struct_decode_day(payloads, day, factor, symbol).equals(one):
        raise AssertionError("the struct baseline decoder and decode_day_ticks disagree")

    figures: list[Figure] = []
    fns = {"lzma": lambda: lzma_only(payloads)}
    if wanted & {"decode_1core", "decode_vs_struct"}:
        fns["ours_1"] = lambda: ours_decode(payloads, day, factor, symbol, 1)
    if "decode_2cores" in wanted:
        fns["ours_2"] = lambda: ours_decode(payloads, day, factor, symbol, 2)
    if "decode_vs_struct" in wanted:
        fns["struct"] = lambda: struct_decode_day(payloads, day, factor, symbol)
    if len(fns) > 1:
        log(f"BI5 decode: {n:,} ticks, {cfg.repeats} rounds")
        t = median_times(fns, cfg.repeats, warmup=cfg.warmup, budget=cfg.budget_seconds)
        what = f"{n / 1e6:.2f} M ticks"
        if "decode_1core" in wanted:
            figures.append(speedup("decode_1core", f"BI5 decode + normalise, 1 core ({what})", "`lzma.decompress` alone, 1 core",
                                   n, t["ours_1"], t["lzma"], target=0.9))
        if "decode_2cores" in wanted:
            figures.append(speedup("decode_2cores", f"BI5 decode + normalise, 2 cores ({what})", "`lzma.decompress` alone, 1 core",
                                   n, t["ours_2"], t["lzma"], target=1.6))
        if "decode_vs_struct" in wanted:
            figures.append(speedup("decode_vs_struct", f"BI5 decode + normalise, 1 core ({what})",
                                   "per-record `struct.iter_unpack` loop, same normalisation, 1 core",
                                   n, t["ours_1"], t["struct"], target=8.0))
    if cfg.scaling and "decode_1core" in wanted:
        next(f for f in figures if f.id == "decode_1core").scaling = _decode_scaling(ws)
    if "parquet_size" in wanted:
        size = len(encode_parquet(one))
        fig = Figure("parquet_size", f"tick Parquet size ({n / 1e6:.2f} M ticks, `encode_parquet`)", "raw BI5 records",
                     size / n, float(RAW_RECORD_BYTES), "B/tick", size / n / RAW_RECORD_BYTES, "<=", 0.5)
        if cfg.scaling:
            fig.scaling = _size_scaling(ws)
        figures.append(fig)
    return figures


def _feed_payloads(ws: Workspace, day: date) -> list[bytes | None]:
    out: list[bytes | None] = []
    for hour in bi5.day_hours(day):
        path = ws.feed_dir / bi5.hour_path(ws.symbol, hour)
        out.append(path.read_bytes() if path.exists() else None)
    return out


def _decode_scaling(ws: Workspace) -> Scaling:
    """Ours, 1 core, over the datafeed's first day and over all its days (same compression)."""
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
    return Scaling("ns/tick", t["one"] / n1 * 1e9, t["all"] / nn * 1e9, ws.config.days, n1, nn)


def _size_scaling(ws: Workspace) -> Scaling:
    sizes = {day: len(encode_parquet(ws.ticks(day))) for day in ws.days}
    n1 = ws.ticks(ws.days[0]).height
    nn = ws.tick_count(ws.days)
    return Scaling("B/tick", sizes[ws.days[0]] / n1, sum(sizes.values()) / nn, ws.config.days, n1, nn)

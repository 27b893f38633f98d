"""Dukascopy's own candles (BID and ASK) as one frame per symbol-day, and the reconciliation of our bars
against them: the continuous form of "minute bars built from ticks equal Dukascopy's candles".

Frame (``vendor_candles_1m`` / ``_1h`` / ``_1d``; ts = candle open, UTC)::

    ts, symbol, point, bid_open, bid_high, bid_low, bid_close, bid_volume, ask_open, ..., ask_volume

``point`` is the price step (the API's multiplier, or 1 / the catalogue's decimal factor for BI5), so
OHLC compare on integer points: round(price / point). Volumes are in millions, as the bars'.

Comparison (:func:`compare_bars`): OHLC must be equal on points, both sides; volumes within
``VOLUME_REL_TOLERANCE`` x the candle's volume + ``VOLUME_ABS_TOLERANCE`` (float32 candle volumes; the
API's are finer than BI5's). A vendor candle with zero volume and no bar is a flat period without ticks
(BI5 writes those), not a difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

import polars as pl

from lake_resources.transforms.ticks import TS_DTYPE

SIDES = ("bid", "ask")
FIELDS = ("open", "high", "low", "close")
VOLUME_REL_TOLERANCE = 1e-6
VOLUME_ABS_TOLERANCE = 1e-3  # millions: a thousand units
CANDLE_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS_DTYPE, "symbol": pl.String(), "point": pl.Float64(),
    **{f"{side}_{f}": pl.Float64() for side in SIDES for f in (*FIELDS, "volume")},
}
#: bars dataset -> the vendor candle dataset it is held to
BAR_CANDLES = {"bars_1m": "vendor_candles_1m", "bars_1h": "vendor_candles_1h", "bars_1d": "vendor_candles_1d"}


def empty_candles() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDLE_SCHEMA)


def candles_frame(symbol: str, day: date, sides: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """BID and ASK candle frames (``ts, open, high, low, close, volume[, multiplier]``, any period) as
    one wide frame of the candles opening on the UTC day ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    parts = []
    for side in SIDES:
        frame = sides.get(side)
        if frame is None or frame.height == 0:
            continue
        frame = frame.filter(pl.col("ts").dt.date() == start.date())
        point = pl.col("multiplier") if "multiplier" in frame.columns else pl.lit(None, pl.Float64)
        parts.append(frame.select(
            "ts", point.cast(pl.Float64).alias(f"{side}_point"),
            *[pl.col(f).cast(pl.Float64).alias(f"{side}_{f}") for f in (*FIELDS, "volume")]))
    if not parts:
        return empty_candles()
    wide = parts[0] if len(parts) == 1 else parts[0].join(parts[1], on="ts", how="full", coalesce=True)
    points = [c for c in wide.columns if c.endswith("_point")]
    wide = wide.with_columns(pl.coalesce(points).alias("point"), pl.lit(symbol).alias("symbol"))
    for column, dtype in CANDLE_SCHEMA.items():
        if column not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype).alias(column))
    return wide.select(list(CANDLE_SCHEMA)).sort("ts")


@dataclass(frozen=True)
class Reconciliation:
    passed: bool
    compared: int  # periods present on both sides
    differing: pl.DataFrame  # ts, what differs (one row per period), with both values
    ohlc_differences: int
    volume_differences: int
    missing_in_bars: int
    missing_in_candles: int


def _points(expr: pl.Expr, point: pl.Expr) -> pl.Expr:
    return (expr / point).round(0).cast(pl.Int64)


def compare_bars(bars: pl.DataFrame, candles: pl.DataFrame, point: float) -> Reconciliation:
    """Hold ``bars`` (the bars contract) to the vendor's ``candles`` (:data:`CANDLE_SCHEMA`)."""
    step = pl.coalesce(pl.col("point"), pl.lit(point))
    ours = bars.select("ts", *[pl.col(f"{s}_{f}").alias(f"our_{s}_{f}") for s in SIDES for f in (*FIELDS, "volume")])
    joined = ours.join(candles, on="ts", how="full", coalesce=True).with_columns(
        pl.col("our_bid_open").is_not_null().alias("_in_bars"), (pl.col("bid_open").is_not_null() | pl.col("ask_open").is_not_null()).alias("_in_candles"))
    zero = (pl.col("bid_volume").fill_null(0) == 0) & (pl.col("ask_volume").fill_null(0) == 0)
    joined = joined.filter(pl.col("_in_bars") | ~zero)  # flat vendor periods without ticks are not gaps
    both = pl.col("_in_bars") & pl.col("_in_candles")
    ohlc_diff = []
    volume_diff = []
    for s in SIDES:
        for f in FIELDS:
            ohlc_diff.append(
                pl.when(pl.col(f"{s}_{f}").is_not_null() & (
                    _points(pl.col(f"our_{s}_{f}"), step) != _points(pl.col(f"{s}_{f}"), step)))
                .then(pl.lit(f"{s}_{f}")))
        tolerance = VOLUME_REL_TOLERANCE * pl.col(f"{s}_volume").abs() + VOLUME_ABS_TOLERANCE
        volume_diff.append(
            pl.when(pl.col(f"{s}_volume").is_not_null()
                    & ((pl.col(f"our_{s}_volume") - pl.col(f"{s}_volume")).abs() > tolerance))
            .then(pl.lit(f"{s}_volume")))
    flagged = joined.with_columns(
        pl.concat_list(ohlc_diff).list.drop_nulls().alias("_ohlc"),
        pl.concat_list(volume_diff).list.drop_nulls().alias("_volume"),
    ).with_columns(
        pl.when(~pl.col("_in_bars")).then(pl.lit("no bar (the vendor has a candle with volume)"))
        .when(~pl.col("_in_candles")).then(pl.lit("no vendor candle"))
        .otherwise(pl.concat_list("_ohlc", "_volume").list.join(", ")).alias("differs"),
    )
    differing = flagged.filter(pl.col("differs") != "").select(
        "ts", "differs", *[c for s in SIDES for f in FIELDS for c in (f"our_{s}_{f}", f"{s}_{f}")],
        *[c for s in SIDES for c in (f"our_{s}_volume", f"{s}_volume")])
    counts = flagged.select(
        both.sum().alias("compared"),
        (both & (pl.col("_ohlc").list.len() > 0)).sum().alias("ohlc"),
        (both & (pl.col("_volume").list.len() > 0)).sum().alias("volume"),
        (~pl.col("_in_bars")).sum().alias("no_bar"),
        (~pl.col("_in_candles")).sum().alias("no_candle"),
    ).row(0, named=True)
    return Reconciliation(differing.height == 0, counts["compared"], differing, counts["ohlc"], counts["volume"],
                          counts["no_bar"], counts["no_candle"])


# ------------------------------------------------------------------------------------------ fetching
#: candle dataset -> the feeds' period kind
KINDS = {"vendor_candles_1m": "minute", "vendor_candles_1h": "hour", "vendor_candles_1d": "day"}
_BI5_STEM = {"minute": "candles_min_1", "hour": "candles_hour_1", "day": "candles_day_1"}


def bi5_candle_path(symbol: str, kind: str, side: str, day: date) -> tuple[str, date]:
    """Relative datafeed path of the BI5 candle file of ``kind`` containing ``day``, and its period start."""
    month = f"{symbol}/{day.year:04d}/{day.month - 1:02d}"
    if kind == "minute":
        return f"{month}/{day.day:02d}/{side}_{_BI5_STEM[kind]}.bi5", day
    if kind == "hour":
        return f"{month}/{side}_{_BI5_STEM[kind]}.bi5", date(day.year, day.month, 1)
    return f"{symbol}/{day.year:04d}/{side}_{_BI5_STEM[kind]}.bi5", date(day.year, 1, 1)


def raw_candle_filename(kind: str, side: str, feed: str) -> str:
    return f"{side}_{_BI5_STEM[kind]}." + ("bi5" if feed == "datafeed" else "json.zst")


def fetch_vendor_candles(lake, source, symbol: str, day: date, kind: str) -> tuple[pl.DataFrame, list[str]]:
    """The vendor's BID and ASK candles of ``kind`` opening on ``day``, fetched through ``source`` (either
    feed); each response is kept in the raw zone as received (API ones zstd-compressed). Returns the
    wide frame and one line per side saying where it came from."""
    from lake_resources.catalog.instruments import instrument
    from lake_resources.sources.dukascopy import api_codec as codec
    from lake_resources.sources.dukascopy import bi5
    from lake_resources.sources.dukascopy.ingest import RAW_SOURCE
    from lake_resources.sources.vendor import compress_pull

    sides: dict[str, pl.DataFrame] = {}
    notes = []
    for side in ("BID", "ASK"):
        name = raw_candle_filename(kind, side, source.feed)
        if source.feed == "api":
            fetched = source.fetch_candles(symbol, kind, side, day)
            payload, status, where = fetched.payload, fetched.status, fetched.source
            if payload:
                lake.put_raw(RAW_SOURCE, symbol, day, name, compress_pull(payload))
            if status == "present":
                sides[side.lower()] = codec.decode_candles(payload, name=where)
        else:
            rel, start = bi5_candle_path(symbol, kind, side, day)
            payload = source.fetch_file(rel)
            status, where = ("missing" if payload is None else "present" if payload else "empty"), rel
            if payload:
                lake.put_raw(RAW_SOURCE, symbol, day, name, payload)
                factor = instrument(symbol).decimal_factor
                start_dt = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
                sides[side.lower()] = bi5.decode_candles(payload, start_dt, factor, name=rel).with_columns(
                    pl.lit(1.0 / factor).alias("multiplier"))
        notes.append(f"{side} {kind}: {status} ({where})")
    return candles_frame(symbol, day, sides), notes

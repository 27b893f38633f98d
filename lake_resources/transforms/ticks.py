"""Ticks: the canonical tick frame, and the split of bad ticks into a quarantine frame.

The ticks contract (column order matters, it is the order written to storage)::

    ts (Datetime ns UTC), symbol (Utf8), bid, ask (Float64), bid_volume, ask_volume (Float32),
    mid = (bid + ask) / 2, spread = ask - bid (Float64)

Rows are sorted by ``ts``; ticks sharing a millisecond are real, distinct ticks and keep their file
order (every sort here is stable).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl

from lake_resources.catalog.validation import validate_symbol
from lake_resources.sources.dukascopy import bi5
from lake_resources.sources.dukascopy.bi5 import MS_PER_HOUR
from lake_resources.transforms import domain

TS_DTYPE = pl.Datetime("ns", "UTC")

TICK_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS_DTYPE,
    "symbol": pl.Utf8(),
    "bid": pl.Float64(),
    "ask": pl.Float64(),
    "bid_volume": pl.Float32(),
    "ask_volume": pl.Float32(),
    "mid": pl.Float64(),
    "spread": pl.Float64(),
}
TICK_COLUMNS: tuple[str, ...] = tuple(TICK_SCHEMA)
#: What ``bi5.decode_ticks`` / ``decode_day_ticks`` produce; the input of :func:`normalize_ticks`.
DECODED_COLUMNS: tuple[str, ...] = ("ts", "bid", "ask", "bid_volume", "ask_volume")
#: Quarantine frames are the tick columns plus this one, saying why each row was refused.
REASON_COLUMN = "reason"
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {**TICK_SCHEMA, REASON_COLUMN: pl.Utf8()}



class FrameContractError(ValueError):
    """A frame handed to a transformation breaks its input contract; the message says what and where."""


# --- helpers shared with bars.py ----------------------------------------------------------------


def require_columns(df: pl.DataFrame | pl.LazyFrame, columns: Iterable[str], *, where: str) -> None:
    names = df.collect_schema().names() if isinstance(df, pl.LazyFrame) else df.columns
    missing = [c for c in columns if c not in names]
    if missing:
        raise FrameContractError(f"{where}: missing column(s) {missing}; got {names}")


def utc_ns(df: pl.DataFrame, column: str = "ts", *, where: str) -> pl.Expr:
    """Expression turning a tz-aware datetime column into ``Datetime("ns", "UTC")``.

    Naive timestamps are refused: guessing their zone is how a lake ends up an hour off.
    """
    dtype = df.schema[column]
    if not isinstance(dtype, pl.Datetime):
        raise FrameContractError(f"{where}: column {column!r} must be a Datetime, got {dtype}")
    if dtype.time_zone is None:
        raise FrameContractError(
            f"{where}: column {column!r} holds naive timestamps ({dtype}); expected a time zone (UTC)"
        )
    expr = pl.col(column)
    if dtype.time_zone != "UTC":
        expr = expr.dt.convert_time_zone("UTC")
    return expr.cast(TS_DTYPE)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def empty_frame(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


# --- normalisation --------------------------------------------------------------------------------


def normalize_ticks(decoded: pl.DataFrame, symbol: str) -> pl.DataFrame:
    """Decoded ticks (``ts, bid, ask, bid_volume, ask_volume``) -> the ticks contract.

    Adds ``symbol``, ``mid`` and ``spread``, casts to the contract dtypes and sorts by ``ts``
    (stable; skipped when already sorted). Other input columns are not part of the contract and are
    left out; a ``symbol`` column that disagrees with ``symbol`` is an error.
    """
    symbol = validate_symbol(symbol)
    where = f"ticks of {symbol}"
    require_columns(decoded, DECODED_COLUMNS, where=where)
    if "symbol" in decoded.columns and decoded.height:
        others = decoded["symbol"].drop_nulls().unique().to_list()
        if others and others != [symbol]:
            raise FrameContractError(f"{where}: frame carries symbol(s) {others}, not {symbol!r}")
    bid = pl.col("bid").cast(pl.Float64)
    ask = pl.col("ask").cast(pl.Float64)
    out = decoded.select(
        utc_ns(decoded, where=where).alias("ts"),
        pl.lit(symbol, pl.Utf8).alias("symbol"),
        bid.alias("bid"),
        ask.alias("ask"),
        pl.col("bid_volume").cast(pl.Float32),
        pl.col("ask_volume").cast(pl.Float32),
        ((bid + ask) / 2.0).alias("mid"),
        (ask - bid).alias("spread"),
    )
    if not out["ts"].is_sorted(nulls_last=True):
        out = out.sort("ts", maintain_order=True, nulls_last=True)
    return out


# --- quarantine -----------------------------------------------------------------------------------


def _positive_price(column: str) -> pl.Expr:
    # polars orders NaN above every number, so "> 0" alone would let NaN through: test finiteness too
    return (pl.col(column).is_finite() & (pl.col(column) > 0)).fill_null(False)


def _valid_volume(column: str) -> pl.Expr:
    return (pl.col(column).is_finite() & (pl.col(column) >= 0)).fill_null(False)


def _bad_tick_rules(
    window: tuple[datetime, datetime] | None, window_reason: str
) -> list[tuple[str, pl.Expr]]:
    rules: list[tuple[str, pl.Expr]] = [("null timestamp", pl.col("ts").is_null())]
    if window is not None:
        start, end = (pl.lit(t).cast(TS_DTYPE) for t in window)
        rules.append((window_reason, ((pl.col("ts") < start) | (pl.col("ts") >= end)).fill_null(False)))
    for side in ("bid", "ask"):
        rules.append((f"{side} is not a positive finite price", ~_positive_price(side)))
    rules.append(
        (
            "crossed quote: bid > ask",
            (_positive_price("bid") & _positive_price("ask") & (pl.col("bid") > pl.col("ask"))),
        )
    )
    for side in ("bid_volume", "ask_volume"):
        rules.append((f"{side} is NaN, infinite, negative or null", ~_valid_volume(side)))
    return rules


def _with_jump_rule(df: pl.DataFrame, rules: list[tuple[str | pl.Expr, pl.Expr]],
                    symbol: str | None) -> list[tuple[str | pl.Expr, pl.Expr]]:
    """``rules`` plus the price-jump rule (``transforms.domain``), judged on the rows no other rule
    refuses, against a level made of those rows only: a zero or crossed quote is refused for what it
    is, and never moves the level. The other rules are evaluated once here; the returned rules refer
    to their result (one boolean column), so nothing is computed twice."""
    if df.height == 0:
        return rules
    others = df.select(pl.any_horizontal([bad for _, bad in rules]).alias("bad")).to_series()
    others_ok = pl.lit(~others)
    bad, reason = domain.jump_rule(df, ("bid", "ask"), level_of="mid" if "mid" in df.columns else "bid",
                                   symbol=symbol, valid=others_ok, one_symbol=symbol is not None)
    if not others.any():  # the usual case: only the jump rule can refuse anything
        return [(reason, bad)]
    return [*rules, (reason, bad)]


def _split(df: pl.DataFrame, rules: Sequence[tuple[str | pl.Expr, pl.Expr]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    # Cheap check first: one boolean pass over the rules. Almost every day has no bad tick, and
    # then the input itself is the good frame (no copy, no reason strings built per row).
    if not df.select(pl.any_horizontal([bad for _, bad in rules]).any()).item():
        return df, pl.DataFrame(schema={**df.schema, REASON_COLUMN: pl.Utf8()})
    reason = pl.concat_str(
        [pl.when(bad).then(pl.lit(text) if isinstance(text, str) else text) for text, bad in rules],
        separator="; ", ignore_nulls=True
    ).alias(REASON_COLUMN)
    tagged = df.with_columns(reason)
    is_bad = pl.col(REASON_COLUMN) != ""
    good = tagged.filter(~is_bad).drop(REASON_COLUMN)
    quarantine = tagged.filter(is_bad)
    return good, quarantine


def split_bad_ticks(df: pl.DataFrame, day: date | None = None, *, symbol: str | None = None,
                    jumps: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ticks into ``(good, quarantine)``; nothing is dropped: every input row is in one of them.

    A row is refused when its timestamp is null (or, given ``day``, outside that UTC day), a price is
    zero, negative, NaN, infinite or null, the quote is crossed (bid > ask), a volume is NaN,
    infinite, negative or null, or (``jumps``) its bid or ask is a price jump: more than the market's
    factor away from the robust rolling level of the other rows (``transforms.domain``; the factor is
    ``symbol``'s, else that of each row's ``symbol``). The quarantine frame has the input columns plus ``reason`` (Utf8),
    listing every rule the row broke, separated by ``"; "``. Row order is kept in both frames. When
    no row is bad, ``good`` is ``df`` itself (not a copy).
    """
    require_columns(df, DECODED_COLUMNS, where="split_bad_ticks")
    window = _day_bounds(day) if day is not None else None
    rules = _bad_tick_rules(window, f"timestamp outside the UTC day {day}")
    return _split(df, _with_jump_rule(df, rules, symbol) if jumps else rules)


# --- raw records of one hourly file ---------------------------------------------------------------


def split_hour_records(
    recs: np.ndarray,
    hour_start: datetime,
    decimal_factor: int,
    symbol: str,
    *,
    name: str = "<bytes>",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Raw records of ONE hourly file -> ``(good ticks, quarantine)``, both in the ticks contract.

    Records with ``ms >= 3_600_000`` are refused as "timestamp beyond the hour" (the reason names
    the file); the other rules of :func:`split_bad_ticks` apply too.
    """
    if hour_start.tzinfo is None:
        raise FrameContractError(f"{name}: hour_start {hour_start} must be timezone-aware (UTC)")
    hour_start = hour_start.astimezone(timezone.utc)
    if (hour_start.minute, hour_start.second, hour_start.microsecond) != (0, 0, 0):
        raise FrameContractError(f"{name}: hour_start {hour_start.isoformat()} is not the start of an hour")
    start_ns = (
        int((hour_start - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)) * 1000
    )
    ticks = normalize_ticks(bi5.ticks_frame(recs, start_ns, decimal_factor), symbol)
    window = (hour_start, hour_start + timedelta(hours=1))
    reason = f"timestamp beyond the hour in {name} (ms offset >= {MS_PER_HOUR})"
    return _split(ticks, _with_jump_rule(ticks, _bad_tick_rules(window, reason), symbol))

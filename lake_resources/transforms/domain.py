"""Domain rules: well-formed rows that cannot be market data. Plain, feed-agnostic polars over the
canonical ticks and bars frames (any decoder's output, once in the contract), used to quarantine at
ingestion (``transforms.ticks.split_bad_ticks``, vendor bar pulls) and by the stored-data checks
(``quality.check_prices`` / ``check_timestamps_in_day``).

Price jumps. A price is compared with a robust rolling level: the median of each minute's prices,
then a centred rolling median of those minute medians over ``2 * LEVEL_HALF_WINDOW + 1`` minutes that
have data. A row more than ``factor`` times above or below its level is a jump (``factor`` per
market, :data:`JUMP_FACTORS`). Being a median of medians, the level ignores bad rows as long as they
fill fewer than about half of the window (some 3 hours of active minutes), whatever their number per
minute; one group-by, one rolling median over at most 1,440 values a day and one join: O(n).

Minute bars. A minute bar's ``ts`` is on a minute boundary, and a symbol has one bar per minute.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from lake_resources.catalog.calendar import Market, market_of
from lake_resources.catalog.instruments import UnknownSymbolError

#: How far (as a factor) a price may stray from its rolling level, per market. Wide on purpose: the
#: wildest real moves stay under it (EURCHF on 2015-01-15 fell 1.20 -> 0.85, 1.41x); what these catch
#: is nonsense: a uint32 overflow (x37,000 on EURUSD), a wrong decimal factor (x10).
JUMP_FACTORS: dict[Market, float] = {Market.FX: 1.5, Market.CRYPTO: 2.0, Market.US_EQUITY: 2.0,
                                     Market.UNKNOWN: 2.0}
#: Minutes with data on each side of a row's minute that its level is the median of.
LEVEL_HALF_WINDOW = 180
MINUTES_PER_DAY = 1440

_MINUTE = "__lake_minute"
_LEVEL = "__lake_level"


def jump_factor(symbol: str) -> float:
    """The jump bound of ``symbol``'s market (the widest one for a symbol the catalogue lacks)."""
    try:
        return JUMP_FACTORS[market_of(symbol)]
    except (UnknownSymbolError, ValueError):  # not in the catalogue, or not a symbol at all
        return JUMP_FACTORS[Market.UNKNOWN]


def _keys(df: pl.DataFrame) -> list[str]:
    return ["symbol"] if "symbol" in df.columns else []


def rolling_level(df: pl.DataFrame, price: str, *, valid: pl.Expr | None = None,
                  half_window: int = LEVEL_HALF_WINDOW, one_symbol: bool = False,
                  _sorted: bool = False) -> pl.Series:
    """Per row, the robust level of ``price`` around its minute (per symbol), computed from the rows
    where ``valid`` holds (default: all) and ``price`` is a positive finite number; a minute without
    such a row takes the level of the next minute that has one (null when none is left).

    Minutes are numbered by runs over the frame sorted by (symbol, ts), so the per-row level is a
    ``gather``, not a join; an unsorted frame is sorted first (stable) and put back in its order.
    ``one_symbol``: the caller knows the frame holds one symbol (saves looking).
    """
    several = not one_symbol and "symbol" in df.columns and df["symbol"].n_unique() > 1
    keys = ["symbol"] if several else []
    if not (_sorted or (not several and df["ts"].is_sorted())):
        indexed = df.with_row_index("__lake_row").sort([*keys, "ts"], maintain_order=True, nulls_last=True)
        level = rolling_level(indexed.drop("__lake_row"), price, valid=valid, half_window=half_window,
                              one_symbol=one_symbol, _sorted=True)
        return level.gather(indexed["__lake_row"].arg_sort())
    if df.height == 0:
        return pl.Series(_LEVEL, [], dtype=pl.Float64)
    usable = pl.col(price).is_finite() & (pl.col(price) > 0) & pl.col("ts").is_not_null()
    if valid is not None:
        usable = usable & valid
    minute = pl.col("ts").dt.epoch("ns") // 60_000_000_000
    code = (pl.struct(*keys, minute) if keys else minute).rle_id().alias(_MINUTE)
    coded = df.select(code, *keys, pl.col(price).alias(_LEVEL), usable.fill_null(False).alias("__lake_ok"))
    rolling = pl.col(_LEVEL).rolling_median(2 * half_window + 1, min_samples=1, center=True)
    per_minute = (
        coded.lazy().filter("__lake_ok").group_by(_MINUTE).agg(pl.col(_LEVEL).median(), *(pl.first(k) for k in keys))
        .sort(_MINUTE).with_columns(rolling.over(keys) if keys else rolling).collect()
    )
    if per_minute.height == 0:
        return pl.Series(_LEVEL, [None] * df.height, dtype=pl.Float64)
    levels, codes = per_minute[_LEVEL], coded[_MINUTE]
    if per_minute.height == codes[-1] + 1:  # the usual case: every minute has a usable row
        return levels.gather(codes).alias(_LEVEL)
    # otherwise a row takes its minute's level, or the next minute's that has one (past the last: null)
    at = per_minute[_MINUTE].search_sorted(codes, side="left")
    if keys:  # never another symbol's level
        at = pl.select(pl.when(per_minute["symbol"].append(pl.Series([None], dtype=pl.Utf8)).gather(at) == coded["symbol"])
                       .then(at).otherwise(per_minute.height)).to_series()
    return levels.append(pl.Series([None], dtype=pl.Float64)).gather(at).alias(_LEVEL)


def factor_expr(df: pl.DataFrame, symbol: str | None = None) -> pl.Expr:
    """Each row's jump factor: of ``symbol``, else of the frame's ``symbol`` column."""
    if symbol is not None or "symbol" not in df.columns:
        return pl.lit(jump_factor(symbol) if symbol else JUMP_FACTORS[Market.UNKNOWN])
    symbols = df["symbol"].drop_nulls().unique().to_list()
    return pl.col("symbol").replace_strict({s: jump_factor(s) for s in symbols},
                                           default=JUMP_FACTORS[Market.UNKNOWN], return_dtype=pl.Float64)


def jump_rule(df: pl.DataFrame, columns: Sequence[str], *, level_of: str, symbol: str | None = None,
              valid: pl.Expr | None = None, level: pl.Expr | None = None,
              one_symbol: bool = False) -> tuple[pl.Expr, pl.Expr]:
    """The price-jump rule over ``df``: ``(bad, reason)`` expressions. ``bad``: a price in ``columns``
    is more than its factor (:func:`jump_factor`) above or below the rolling level of ``level_of``
    (:func:`rolling_level`, from the rows where ``valid`` holds); ``reason`` names the value and level.
    ``level``: a column of ``df`` already holding that level (for rules evaluated on a subset of rows);
    ``one_symbol``: the frame holds only ``symbol``'s rows."""
    if level is None:
        level = pl.lit(rolling_level(df, level_of, valid=valid, one_symbol=one_symbol))
    factor = factor_expr(df, symbol)
    outside = [((pl.col(c) > level * factor) | (pl.col(c) < level / factor)).fill_null(False) for c in columns]
    bad = pl.any_horizontal(outside)
    if valid is not None:
        bad = bad & valid.fill_null(False)
    first = pl.coalesce([pl.when(o).then(pl.lit(c)) for c, o in zip(columns, outside)])
    shown = pl.coalesce([pl.when(o).then(pl.col(c)) for c, o in zip(columns, outside)])
    reason = pl.format("price jump: {} {} is more than {}x away from its rolling median level {}",
                       first, shown, factor.round(2), level.round(6))
    return bad, reason


def minute_bar_rules(keys: Sequence[str] = ("symbol",), ts: str = "ts") -> list[tuple[str, pl.Expr]]:
    """Rules a minute-bars frame must meet: ``ts`` on a minute boundary; one bar per (keys, minute)
    (every copy of a repeated minute is flagged: which one is right cannot be told)."""
    col = pl.col(ts)
    return [
        ("ts is not on a minute boundary", (col != col.dt.truncate("1m")).fill_null(False)),
        ("minute repeated: more than one bar for this minute", pl.struct(*keys, ts).is_duplicated()),
    ]

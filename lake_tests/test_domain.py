"""``lake_resources.transforms.domain``: the feed-agnostic plausibility rules over canonical frames."""

from __future__ import annotations

from datetime import date

import polars as pl

from lake_resources.transforms import domain
from lake_resources.transforms.ticks import normalize_ticks, split_bad_ticks


def _two_symbols(day_ticks: pl.DataFrame) -> pl.DataFrame:
    """The real EURUSD day and the same ticks as a USDJPY-like series (x95), interleaved out of order."""
    eurusd = normalize_ticks(day_ticks, "EURUSD")
    usdjpy = eurusd.with_columns(pl.lit("USDJPY").alias("symbol"), *(pl.col(c) * 95 for c in ("bid", "ask", "mid")))
    return pl.concat([eurusd, usdjpy]).sample(fraction=1.0, shuffle=True, seed=3)


def test_level_is_per_symbol_and_in_row_order(day_ticks):
    """Two symbols ~95x apart, rows shuffled: each row's level is its own symbol's (within 1 %), so
    neither symbol is a jump against the other."""
    mixed = _two_symbols(day_ticks)
    level = domain.rolling_level(mixed, "mid")
    assert level.null_count() == 0
    assert ((mixed["mid"] / level).log().abs().max()) < 0.01
    good, bad = split_bad_ticks(mixed, date(2019, 2, 4))
    assert bad.height == 0 and good.height == mixed.height


def test_a_spike_in_one_symbol_flags_only_that_row(day_ticks):
    mixed = _two_symbols(day_ticks).with_row_index("i")
    target = mixed.filter(pl.col("symbol") == "USDJPY")["i"][1000]
    spiked = mixed.with_columns(*(pl.when(pl.col("i") == target).then(pl.col(c) * 10).otherwise(pl.col(c))
                                  for c in ("bid", "ask", "mid"))).drop("i")
    good, bad = split_bad_ticks(spiked, date(2019, 2, 4))
    assert bad.height == 1 and bad["symbol"].to_list() == ["USDJPY"]
    assert bad["reason"][0].startswith("price jump: bid ") and "1.5x" in bad["reason"][0]
    assert good.height == spiked.height - 1


def test_minutes_without_a_usable_price_take_the_next_level():
    """A minute whose only row is refused (zero price) still gets a level: the next minute's."""
    frame = pl.DataFrame({
        "ts": pl.datetime_range(pl.datetime(2019, 2, 4, 10, time_zone="UTC"), pl.datetime(2019, 2, 4, 10, 4, time_zone="UTC"),
                                "1m", eager=True).cast(pl.Datetime("ns", "UTC")),
        "close": [1.0, 0.0, 1.1, 1.2, 1.3],
    })
    level = domain.rolling_level(frame, "close", half_window=0)
    assert level.to_list() == [1.0, 1.1, 1.1, 1.2, 1.3]


def test_jump_factor_per_market():
    assert domain.jump_factor("EURUSD") == 1.5 and domain.jump_factor("XAUUSD") == 1.5
    assert domain.jump_factor("BTCUSD") == 2.0 and domain.jump_factor("AAPL") == 2.0
    assert domain.jump_factor("NOT-A-SYMBOL") == 2.0

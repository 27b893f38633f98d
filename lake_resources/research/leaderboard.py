"""Rank backtest run summaries by one metric, with the other metrics beside it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

#: Direction of the metrics the backtest engine reports (True = higher is better).
HIGHER_IS_BETTER = {
    "sharpe": True,
    "sortino": True,
    "total_return": True,
    "total_pnl": True,
    "hit_rate": True,
    "max_drawdown": False,
    "turnover": False,
    "commission": False,
}


class LeaderboardError(ValueError):
    """The summaries cannot be ranked as asked; the message says which column or run."""


def leaderboard(
    summaries: pl.DataFrame | Iterable[Mapping[str, Any]],
    metric: str = "sharpe",
    *,
    descending: bool | None = None,
    key: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Rank runs by ``metric`` (best first) and return ``rank``, the key columns, ``metric``, the rest.

    ``descending`` defaults to the metric's known direction (:data:`HIGHER_IS_BETTER`; needed for
    any other metric). Runs whose metric is null or NaN rank last. Ties are broken by the ``key``
    columns ascending (default ``spec_id``, plus ``symbol`` when present), which must identify each
    run once, so the ranking never depends on input order. Ranks are 1..n without gaps.
    """
    frame = summaries if isinstance(summaries, pl.DataFrame) else pl.DataFrame(list(summaries))
    if metric not in frame.columns:
        raise LeaderboardError(f"no metric column {metric!r} in summaries (columns: {', '.join(frame.columns)})")
    if not frame.schema[metric].is_numeric():
        raise LeaderboardError(f"metric {metric!r} is {frame.schema[metric]}, not numeric")
    if descending is None:
        if metric not in HIGHER_IS_BETTER:
            raise LeaderboardError(f"say whether a higher {metric!r} is better: pass descending=True/False")
        descending = HIGHER_IS_BETTER[metric]
    if key is None:
        key = ["spec_id", *(["symbol"] if "symbol" in frame.columns else [])]
    if missing := [c for c in key if c not in frame.columns]:
        raise LeaderboardError(f"key column(s) {missing} not in summaries")
    duplicated = frame.select(key).is_duplicated()
    if duplicated.any():
        first = frame.select(key).filter(duplicated).row(0)
        raise LeaderboardError(f"runs repeated in summaries: {first} (key {list(key)})")
    value = pl.col(metric).cast(pl.Float64)
    ordered = (
        frame.with_columns(value.fill_nan(None).is_null().alias("_missing"), value.fill_nan(None).alias("_value"))
        .sort(["_missing", "_value", *key], descending=[False, descending, *([False] * len(key))], nulls_last=True)
        .drop("_missing", "_value")
    )
    rest = [c for c in frame.columns if c not in (*key, metric)]
    return ordered.select(pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).alias("rank"), *key, metric, *rest)

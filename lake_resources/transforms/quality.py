"""Domain checks on ticks and bars: plain functions returning a :class:`CheckOutcome` a person can read.

Each outcome says what failed, where (row numbers, hours) and how many; ``metadata`` holds only
JSON-able values (numbers, strings, lists) so it can go straight into an asset-check result, and
``failing_rows`` holds up to :data:`MAX_FAILING_ROWS` offending rows with their row number
(``row``) and the ``problem``. File checksums are the storage layer's business, not checked here.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal

import polars as pl

from lake_resources.catalog.calendar import Market, expected_hours, market_of
from lake_resources.transforms import domain
from lake_resources.transforms.ticks import TS_DTYPE

Severity = Literal["ERROR", "WARN"]
MAX_FAILING_ROWS = 100
_EXAMPLES = 5  # row numbers quoted in a description


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    severity: Severity
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    failing_rows: pl.DataFrame | None = None


def _rows_where(df: pl.DataFrame, problems: Sequence[tuple[str | pl.Expr, pl.Expr]]) -> pl.DataFrame:
    """Rows breaking at least one rule, numbered (``row``) and labelled (``problem``)."""
    # The rules are evaluated on every row (windows such as diff() need the whole frame), the labels
    # only on the failing rows: building a string per row made a check ~10x slower on a clean frame.
    flags = [f"__lake_rule_{i}" for i in range(len(problems))]
    problem = pl.concat_str(
        [pl.when(pl.col(flag)).then(pl.lit(text) if isinstance(text, str) else text)
         for flag, (text, _) in zip(flags, problems)],
        separator="; ",
        ignore_nulls=True,
    ).alias("problem")
    return (
        df.with_row_index("row")
        .with_columns(bad.fill_null(False).alias(flag) for flag, (_, bad) in zip(flags, problems))
        .filter(pl.any_horizontal(flags))
        .with_columns(problem)
        .drop(flags)
    )


def _examples(rows: pl.DataFrame) -> str:
    shown = rows["row"].head(_EXAMPLES).to_list()
    more = "" if rows.height <= _EXAMPLES else f" and {rows.height - _EXAMPLES} more"
    return f"rows {shown}{more}"


def _outcome(
    failing: pl.DataFrame,
    total: int,
    *,
    what: str,
    ok: str,
    severity: Severity = "ERROR",
    metadata: dict[str, Any] | None = None,
) -> CheckOutcome:
    meta = {"rows": total, "failing_rows": failing.height, **(metadata or {})}
    if failing.height == 0:
        return CheckOutcome(True, severity, ok, meta, None)
    # most frequent first; ties by text, so a result reads the same on every run
    counts = failing.group_by("problem").len().sort(["len", "problem"], descending=[True, False])
    meta["problems"] = {p: n for p, n in counts.iter_rows()}
    meta["first_failing_rows"] = failing["row"].head(_EXAMPLES).to_list()
    detail = "; ".join(f"{p}: {n}" for p, n in counts.iter_rows())
    description = f"{failing.height:,} of {total:,} rows {what} ({detail}); {_examples(failing)}"
    return CheckOutcome(False, severity, description, meta, failing.head(MAX_FAILING_ROWS))


def _day_bounds(day: date) -> tuple[pl.Expr, pl.Expr]:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return pl.lit(start).cast(TS_DTYPE), pl.lit(start + timedelta(days=1)).cast(TS_DTYPE)


# --- timestamps -------------------------------------------------------------------------------------


def check_timestamps_in_day(df: pl.DataFrame, day: date, *, bars: bool = False) -> CheckOutcome:
    """Every ``ts`` is inside the UTC day and none goes back in time (within a symbol); with ``bars``,
    each is also on a minute boundary (bars of a minute or more open on one)."""
    start, end = _day_bounds(day)
    ts = pl.col("ts")
    went_back = ts.diff().over("symbol") if "symbol" in df.columns else ts.diff()
    rules = [
        ("null ts", ts.is_null()),
        (f"ts outside {day} UTC", (ts < start) | (ts >= end)),
        ("ts earlier than the row before", went_back < pl.duration(nanoseconds=0)),
    ]
    if bars:
        rules.append(domain.minute_bar_rules()[0])
    return _outcome(
        _rows_where(df, rules),
        df.height,
        what=f"have a bad timestamp for {day}",
        ok=f"all {df.height:,} timestamps are inside {day} UTC and non-decreasing"
        + (", on minute boundaries" if bars else ""),
        metadata={"day": day.isoformat()},
    )


# --- prices and OHLC --------------------------------------------------------------------------------

_REQUIRED_PRICES = ("bid", "ask", "mid", "open", "high", "low", "close")
_OPTIONAL_PRICES = tuple(f"{side}_{x}" for side in ("bid", "ask") for x in ("open", "high", "low", "close"))


def _has_values(df: pl.DataFrame, name: str) -> bool:
    """The column exists and is not null throughout (vendor bars carry all-null bid/ask sides)."""
    return name in df.columns and (df.height == 0 or df[name].null_count() < df.height)


def check_prices(df: pl.DataFrame) -> CheckOutcome:
    """Prices are positive and finite; bid <= ask (ticks) and bid_x <= ask_x (bars); no price jump.

    ``bid``/``ask``/``mid`` and bar ``open``/``high``/``low``/``close`` must be present in every
    row; bar ``bid_*``/``ask_*`` may be null (vendor bars), but not zero, negative or NaN. A price
    jump: a tick's bid or ask, or a bar's open/high/low/close, more than its market's factor away from
    the robust rolling level of mid (ticks) or close (bars) (``transforms.domain``), among rows whose
    prices are otherwise fine.
    """
    rules: list[tuple[str, pl.Expr]] = []
    checked = []
    for name in (*_REQUIRED_PRICES, *_OPTIONAL_PRICES):
        required = name in _REQUIRED_PRICES
        if not (name in df.columns if required else _has_values(df, name)):
            continue
        checked.append(name)
        col = pl.col(name)
        bad = ~(col.is_finite() & (col > 0))
        rules.append(
            (
                f"{name} not a positive finite price",
                bad if required else bad & col.is_not_null(),
            )
        )
        if required:
            rules.append((f"{name} is null", col.is_null()))
    pairs = [("bid", "ask")] + [(f"bid_{x}", f"ask_{x}") for x in ("open", "high", "low", "close")]
    for bid, ask in pairs:
        if bid in df.columns and ask in df.columns:
            rules.append((f"crossed: {bid} > {ask}", pl.col(bid) > pl.col(ask)))
    if not checked:
        return CheckOutcome(
            False, "ERROR", f"no price columns to check among {df.columns}", {"columns": df.columns}
        )
    frame, jumps = _with_jump_rule(df, rules)
    failing = _rows_where(frame, [*rules, *jumps])
    if jumps:
        failing = failing.drop(_LEVEL)
    return _outcome(
        failing,
        df.height,
        what="have a bad price",
        ok=f"all {df.height:,} rows have positive finite prices, bid <= ask and no price jump ({', '.join(checked)})",
        metadata={"columns": checked, **({"jump_factors": _jump_factors(df)} if jumps else {})},
    )


_LEVEL = "__lake_level"


def _jump_factors(df: pl.DataFrame) -> dict[str, float]:
    symbols = df["symbol"].drop_nulls().unique().sort().to_list() if "symbol" in df.columns else []
    return {s: domain.jump_factor(s) for s in symbols}


def _with_jump_rule(df: pl.DataFrame, rules: list[tuple[str, pl.Expr]]) -> tuple[pl.DataFrame, list]:
    """``df`` with its rolling price level as a column, and the jump rule over it (ticks: bid/ask
    against mid; bars: open/high/low/close against close); ``(df, [])`` when neither applies."""
    if {"bid", "ask", "mid"} <= set(df.columns):
        columns, level_of = ("bid", "ask"), "mid"
    elif {"open", "high", "low", "close"} <= set(df.columns):
        columns, level_of = ("open", "high", "low", "close"), "close"
    else:
        return df, []
    if df.height == 0 or "ts" not in df.columns:
        return df, []
    valid = ~pl.any_horizontal([bad.fill_null(False) for _, bad in rules]) if rules else None
    frame = df.with_columns(domain.rolling_level(df, level_of, valid=valid).alias(_LEVEL))
    bad, reason = domain.jump_rule(frame, columns, level_of=level_of, valid=valid, level=pl.col(_LEVEL))
    return frame, [(reason, bad)]


def check_ohlc(df: pl.DataFrame) -> CheckOutcome:
    """``low <= open, close <= high`` for mid OHLC and, where present, ``bid_*`` and ``ask_*``."""
    rules = []
    checked = []
    for prefix in ("", "bid_", "ask_"):
        names = [f"{prefix}{x}" for x in ("open", "high", "low", "close")]
        if not all(n in df.columns for n in names) or (prefix and not _has_values(df, f"{prefix}open")):
            continue
        checked.append(prefix or "mid")
        o, h, lo, c = (pl.col(n) for n in names)
        rules += [
            (f"{prefix}low > {prefix}open", lo > o),
            (f"{prefix}low > {prefix}close", lo > c),
            (f"{prefix}open > {prefix}high", o > h),
            (f"{prefix}close > {prefix}high", c > h),
        ]
    if not checked:
        return CheckOutcome(
            False, "ERROR", f"no open/high/low/close columns among {df.columns}", {"columns": df.columns}
        )
    return _outcome(
        _rows_where(df, rules),
        df.height,
        what="break low <= open, close <= high",
        ok=f"all {df.height:,} bars have low <= open, close <= high ({', '.join(checked)})",
        metadata={"sides": checked},
    )


# --- gaps ---------------------------------------------------------------------------------------------


def check_gaps(
    ticks_or_bars: pl.DataFrame, symbol: str, day: date, *, severity: Severity = "WARN"
) -> CheckOutcome:
    """UTC hours of ``day`` inside the instrument's trading hours (``calendar.py``) with no row.

    WARN by default: the real Dukascopy feed has the odd empty hour in trading time, so a gap is worth
    a look, not a reason to block everything downstream. A symbol without a trading-hours rule
    passes with a note: nothing can be expected of it.
    """
    market = market_of(symbol)
    meta: dict[str, Any] = {"symbol": symbol, "day": day.isoformat(), "market": market.value}
    if market is Market.UNKNOWN:
        return CheckOutcome(True, severity, f"no trading-hours rule for {symbol}: gaps not checked", meta)
    frame = ticks_or_bars.lazy()  # lazy: only ts (and symbol) are read, the other columns are not copied
    if "symbol" in ticks_or_bars.columns:
        frame = frame.filter(pl.col("symbol") == symbol)
    start, end = _day_bounds(day)
    present = set(
        frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        .select(pl.col("ts").dt.hour().unique())
        .collect()["ts"]
        .to_list()
    )
    expected = expected_hours(symbol, day)
    missing = [h for h in expected if h not in present]
    meta.update(expected_hours=expected, hours_with_data=sorted(present), missing_hours=missing)
    if not missing:
        return CheckOutcome(
            True, severity, f"{symbol} {day}: data in all {len(expected)} expected trading hours (UTC)", meta
        )
    day_start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    rows = pl.DataFrame(
        {"hour_start": [day_start + timedelta(hours=h) for h in missing]},
        schema={"hour_start": TS_DTYPE},
    ).with_columns(pl.lit(f"no data in a {market.value} trading hour").alias("problem"))
    return CheckOutcome(
        False,
        severity,
        f"{symbol} {day}: {len(missing)} of {len(expected)} trading hours have no data: "
        + ", ".join(f"{h:02d}:00" for h in missing)
        + " UTC",
        meta,
        rows,
    )


# --- duplicates ---------------------------------------------------------------------------------------


def check_duplicates(
    df: pl.DataFrame, key_cols: Sequence[str] | None = None, *, severity: Severity = "ERROR"
) -> CheckOutcome:
    """Rows equal to an earlier row on ``key_cols`` (default: all columns, i.e. exact duplicates).

    Ticks sharing a millisecond with different prices or volumes are real, distinct ticks and are
    not duplicates under the default; keys like ``("symbol", "ts")`` suit bars, not ticks.
    """
    cols = list(key_cols) if key_cols else list(df.columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        return CheckOutcome(
            False,
            "ERROR",
            f"duplicate check: key column(s) {missing} not in {df.columns}",
            {"key_columns": cols},
        )
    label = "all columns" if not key_cols else ", ".join(cols)
    candidates = df.with_row_index("row")
    sorted_key = next((c for c in cols if (df[c].dtype.is_numeric() or df[c].dtype.is_temporal()) and df[c].is_sorted()),
                      None)
    if sorted_key is not None:
        # Equal values of a sorted key column are adjacent, so only rows beside an equal value can repeat an
        # earlier row: the exact test then runs on those few (~50x faster on a day of time-sorted ticks).
        key = pl.col(sorted_key)
        candidates = candidates.filter(key.eq_missing(key.shift(1)) | key.eq_missing(key.shift(-1)))
    failing = candidates.filter(~pl.struct(cols).is_first_distinct()).with_columns(
        pl.lit(f"repeats an earlier row on {label}").alias("problem")
    )
    return _outcome(
        failing,
        df.height,
        what=f"repeat an earlier row on {label}",
        ok=f"no duplicate rows on {label} among {df.height:,}",
        severity=severity,
        metadata={"key_columns": cols},
    )


# --- row counts ---------------------------------------------------------------------------------------


def check_row_count_anomaly(
    current_rows: int,
    trailing_counts: Sequence[int],
    *,
    current_hours: float | None = None,
    trailing_hours: Sequence[float] | None = None,
    k: float = 5.0,
    min_fraction: float = 0.1,
    min_band_fraction: float = 0.05,
    min_history: int = 3,
) -> CheckOutcome:
    """Is today's row count far from the trailing days'? (WARN: markets do have quiet days.)

    Fails when ``current_rows`` is below ``min_fraction`` x the trailing median, or outside
    median +/- max(k x 1.4826 x MAD, min_band_fraction x median) (MAD scaled to a normal sigma; the
    floor keeps a perfectly steady history from flagging a one-row difference). With fewer than
    ``min_history`` trailing counts it passes, saying so. Given each day's trading hours
    (``current_hours``, ``trailing_hours``: from the calendar), rows per trading hour are compared
    instead, so a short session (a Friday close, a Sunday open, a holiday) is not an anomaly. Activity is
    not uniform over the day (a short session drops quiet or busy hours), so the band's floor widens by
    how much shorter or longer today's session is than the trailing median session.
    """
    history = [int(c) for c in trailing_counts]
    meta: dict[str, Any] = {"current_rows": int(current_rows), "trailing_counts": history}
    if len(history) < min_history:
        return CheckOutcome(
            True,
            "WARN",
            f"{current_rows:,} rows; only {len(history)} trailing count(s), need {min_history} to judge",
            meta,
        )
    if current_hours is not None and trailing_hours is not None:
        if len(trailing_hours) != len(history) or current_hours <= 0 or min(trailing_hours) <= 0:
            raise ValueError(f"trading hours {current_hours}, {list(trailing_hours)} do not fit {len(history)} "
                             "trailing counts (one positive number per day expected)")
        values = [c / h for c, h in zip(history, trailing_hours)]
        current: float = current_rows / current_hours
        min_band_fraction = max(min_band_fraction, abs(1 - current_hours / statistics.median(trailing_hours)))
        unit = " per trading hour"
        what = f"{current_rows:,} rows in {current_hours:g} trading hours ({current:,.0f} per hour)"
        meta.update(current_hours=current_hours, trailing_hours=list(trailing_hours))
    else:
        values, current, unit, what = [float(c) for c in history], float(current_rows), "", f"{current_rows:,} rows"
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    half_width = max(k * 1.4826 * mad, min_band_fraction * median)
    low, high = median - half_width, median + half_width
    meta.update(median=median, mad=mad, band=[low, high], floor=min_fraction * median)
    if current < min_fraction * median:
        return CheckOutcome(
            False,
            "WARN",
            f"{what} is under {min_fraction:.0%} of the trailing median {median:,.0f}{unit}",
            meta,
        )
    if not low <= current <= high:
        return CheckOutcome(
            False,
            "WARN",
            f"{what} is outside the expected band {low:,.0f}..{high:,.0f}{unit} "
            f"(trailing median {median:,.0f}, MAD {mad:,.0f}, k={k})",
            meta,
        )
    return CheckOutcome(
        True,
        "WARN",
        f"{what} is within {low:,.0f}..{high:,.0f}{unit} (trailing median {median:,.0f})",
        meta,
    )

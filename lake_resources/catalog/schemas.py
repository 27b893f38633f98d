"""pandera (polars backend) schemas for every dataset of the lake, and a validator that never raises.

The column contracts themselves live next to the code that produces them
(``transforms.ticks.TICK_SCHEMA``, ``transforms.bars.BAR_SCHEMA``); the schemas here are built from
those dicts, so a contract is written down once. Vendor datasets (option greeks, headlines) and
features are loose: required columns are checked, vendor extras are allowed.

Two pandera habits this module works around: a ``gt(0)`` check lets NaN through (polars orders NaN
above every number), so prices and volumes also get a ``finite`` check; and pandera validates only
the schema, not the data, of a ``LazyFrame``, so lazy frames are collected first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandera.polars as pa
import polars as pl

from lake_resources.catalog.validation import LakeValidationError
from lake_resources.transforms.bars import BAR_SCHEMA
from lake_resources.transforms.ticks import TICK_SCHEMA, TS_DTYPE

#: How many failure cases a ValidationOutcome carries (the count covers all of them).
FAILURE_SAMPLE = 20
FAILURE_COLUMNS: dict[str, pl.DataType] = {
    "column": pl.Utf8(),
    "check": pl.Utf8(),
    "failure_value": pl.Utf8(),
    "index": pl.Int64(),
}
SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{0,31}$"  # as lake_resources.catalog.validation.validate_symbol


# --- reusable checks ----------------------------------------------------------------------------


def _finite() -> pa.Check:
    return pa.Check(
        lambda data: data.lazyframe.select(pl.col(data.key).is_finite().fill_null(True)),
        name="finite",  # not NaN, not infinite
    )


def _price(nullable: bool = False) -> dict:
    return {"checks": [_finite(), pa.Check.gt(0)], "nullable": nullable}


def _non_negative(nullable: bool = False) -> dict:
    return {"checks": [_finite(), pa.Check.ge(0)], "nullable": nullable}


def _frame_check(name: str, expr: pl.Expr, error: str) -> pa.Check:
    """A row-wise check; rows where ``expr`` is null (missing vendor values) pass."""
    return pa.Check(
        lambda data: data.lazyframe.select(expr.fill_null(True).alias(name)), name=name, error=error
    )


def _ohlc_checks(prefix: str) -> list[pa.Check]:
    o, h, lo, c = (pl.col(f"{prefix}{x}") for x in ("open", "high", "low", "close"))
    return [
        _frame_check(
            f"{prefix}low_le_open_close",
            (lo <= o) & (lo <= c),
            f"{prefix}low must be <= {prefix}open and {prefix}close",
        ),
        _frame_check(
            f"{prefix}high_ge_open_close",
            (h >= o) & (h >= c),
            f"{prefix}high must be >= {prefix}open and {prefix}close",
        ),
    ]


def _column(dtype: pl.DataType, **kwargs) -> pa.Column:
    kwargs.setdefault("nullable", False)
    return pa.Column(dtype, **kwargs)


_TS = {"nullable": False}
_SYMBOL = {"checks": [pa.Check.str_matches(SYMBOL_PATTERN)], "nullable": False}

# --- ticks --------------------------------------------------------------------------------------

_tick_rules = {
    "ts": _TS,
    "symbol": _SYMBOL,
    "bid": _price(),
    "ask": _price(),
    "bid_volume": _non_negative(),
    "ask_volume": _non_negative(),
    "mid": _price(),
    "spread": _non_negative(),
}
TICKS = pa.DataFrameSchema(
    {name: _column(dtype, **_tick_rules[name]) for name, dtype in TICK_SCHEMA.items()},
    checks=[
        _frame_check("bid_le_ask", pl.col("bid") <= pl.col("ask"), "crossed quote: bid > ask"),
        _frame_check(
            "mid_is_mean_of_bid_ask",
            pl.col("mid") == (pl.col("bid") + pl.col("ask")) / 2.0,
            "mid must equal (bid + ask) / 2",
        ),
        _frame_check(
            "spread_is_ask_minus_bid",
            pl.col("spread") == pl.col("ask") - pl.col("bid"),
            "spread must equal ask - bid",
        ),
        _frame_check(
            "ts_non_decreasing", pl.col("ts").diff().over("symbol") >= 0, "ticks must be sorted by ts"
        ),
    ],
    strict=True,
    ordered=True,
    name="ticks",
)

# --- bars (all intervals; vendor bars may have null bid/ask sides and extra columns) -------------

_bar_rules: dict[str, dict] = {"ts": _TS, "symbol": _SYMBOL}
for _name in BAR_SCHEMA:
    if _name in ("open", "high", "low", "close"):
        _bar_rules[_name] = _price()
    elif _name.startswith(("bid_", "ask_")) and not _name.endswith("volume"):
        _bar_rules[_name] = _price(nullable=True)
    elif _name in ("bid_volume", "ask_volume", "spread_mean"):
        _bar_rules[_name] = _non_negative(nullable=True)
    elif _name == "volume":
        _bar_rules[_name] = _non_negative()
    elif _name == "tick_count":
        _bar_rules[_name] = {"checks": [pa.Check.ge(1)], "nullable": True}  # a bar exists only with ticks
BARS = pa.DataFrameSchema(
    {name: _column(dtype, **_bar_rules[name]) for name, dtype in BAR_SCHEMA.items()},
    checks=[
        *_ohlc_checks(""),
        *_ohlc_checks("bid_"),
        *_ohlc_checks("ask_"),
        _frame_check(
            "ts_increasing_per_symbol",
            pl.col("ts").diff().over("symbol") > 0,
            "one bar per (symbol, ts), sorted by ts",
        ),
    ],
    strict=False,  # vendor extras follow the contract columns
    ordered=True,
    name="bars",
)

# --- vendor datasets ----------------------------------------------------------------------------

# Column names and dtypes as ``lake_resources.sources.vendor`` parses them (``underlying`` arrives as
# ``symbol``; lineage ``pull_id``/``pulled_at`` and vendor extras follow).


def _optional(dtype: pl.DataType, **kwargs) -> pa.Column:
    return pa.Column(dtype, required=False, **{"nullable": True, **kwargs})


OPTION_GREEKS = pa.DataFrameSchema(
    {
        "ts": _column(TS_DTYPE, **_TS),
        "symbol": _column(pl.Utf8(), **_SYMBOL),
        "expiry": _column(pl.Date()),
        "strike": _column(pl.Float64(), **_price()),
        "right": _column(pl.Utf8(), checks=[pa.Check.isin(["C", "P"])]),
        # the five greeks may be null: the vendor could not compute them
        "iv": _column(pl.Float64(), **_non_negative(nullable=True)),
        "delta": _column(pl.Float64(), checks=[_finite(), pa.Check.in_range(-1.0, 1.0)], nullable=True),
        "gamma": _column(pl.Float64(), **_non_negative(nullable=True)),
        "theta": _column(pl.Float64(), checks=[_finite()], nullable=True),
        "vega": _column(pl.Float64(), **_non_negative(nullable=True)),
        "underlying_price": _optional(pl.Float64(), checks=[_finite(), pa.Check.gt(0)]),
        "mark": _optional(pl.Float64(), checks=[_finite(), pa.Check.ge(0)]),
        "bid": _optional(pl.Float64(), checks=[_finite(), pa.Check.ge(0)]),
        "ask": _optional(pl.Float64(), checks=[_finite(), pa.Check.ge(0)]),
        "open_interest": _optional(pl.Int64(), checks=[pa.Check.ge(0)]),
        "volume": _optional(pl.Float64(), checks=[_finite(), pa.Check.ge(0)]),
    },
    checks=[
        _frame_check(
            "expiry_not_before_ts", pl.col("expiry") >= pl.col("ts").dt.date(), "expiry before the quote date"
        ),
        _frame_check(
            "delta_sign_matches_right",
            pl.when(pl.col("right") == "C").then(pl.col("delta") >= 0).otherwise(pl.col("delta") <= 0),
            "calls need delta >= 0, puts delta <= 0",
        ),
    ],
    strict=False,
    name="option_greeks",
)

HEADLINES = pa.DataFrameSchema(
    {
        "ts": _column(TS_DTYPE, **_TS),
        "symbol": _column(pl.Utf8(), **_SYMBOL),
        "headline": _column(pl.Utf8(), checks=[pa.Check.str_contains(r"\S")]),  # not blank
        "source": _optional(pl.Utf8()),
        "sentiment": _optional(pl.Float64(), checks=[_finite(), pa.Check.in_range(-1.0, 1.0)]),
    },
    strict=False,
    name="headlines",
)

# --- features: keys checked, feature columns loose (their set changes with the feature registry) -

FEATURES = pa.DataFrameSchema(
    {"ts": _column(TS_DTYPE, **_TS), "symbol": _column(pl.Utf8(), **_SYMBOL)},
    checks=[
        _frame_check(
            "ts_increasing_per_symbol",
            pl.col("ts").diff().over("symbol") > 0,
            "one row per (symbol, ts), sorted by ts",
        ),
    ],
    strict=False,
    name="features",
)

# --- the vendor's own candles (lake_resources.sources.dukascopy.candles) -----------------------------------

from lake_resources.sources.dukascopy.candles import CANDLE_SCHEMA  # noqa: E402

VENDOR_CANDLES = pa.DataFrameSchema(
    {
        name: _column(dtype, **({"ts": _TS, "symbol": _SYMBOL}.get(name) or (
            _non_negative(nullable=True) if name.endswith("volume") else _price(nullable=True))))
        for name, dtype in CANDLE_SCHEMA.items()
    },
    checks=[
        *_ohlc_checks("bid_"),
        *_ohlc_checks("ask_"),
        _frame_check("ts_increasing", pl.col("ts").diff() > 0, "one candle per ts, sorted by ts"),
    ],
    strict=True,
    ordered=True,
    name="vendor_candles",
)

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "vendor_candles_1m": VENDOR_CANDLES,
    "vendor_candles_1h": VENDOR_CANDLES,
    "vendor_candles_1d": VENDOR_CANDLES,
    "ticks": TICKS,
    "bars_1m": BARS,
    "bars_5m": BARS,
    "bars_1h": BARS,
    "bars_1d": BARS,
    "option_greeks": OPTION_GREEKS,
    "headlines": HEADLINES,
    "features": FEATURES,
}


# --- validation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationOutcome:
    passed: bool
    failure_count: int
    #: Up to FAILURE_SAMPLE failure cases: column, check, failure_value, index (row; null for schema-level).
    failures: pl.DataFrame = field(repr=False)
    message: str


def schema_for(dataset: str) -> pa.DataFrameSchema:
    try:
        return SCHEMAS[dataset]
    except KeyError:
        raise LakeValidationError(
            f"no schema for dataset {dataset!r}; known: {', '.join(sorted(SCHEMAS))}"
        ) from None


def _no_failures() -> pl.DataFrame:
    return pl.DataFrame(schema=FAILURE_COLUMNS)


def _failure_frame(cases: pl.DataFrame) -> pl.DataFrame:
    # frame-level checks report the schema's name as their column: name the column a missing-column
    # failure is about, "(row)" for row-wise checks and "(frame)" for the rest
    frame_level = pl.col("schema_context") == "DataFrameSchema"
    return cases.select(
        pl.when(frame_level & (pl.col("check") == "column_in_dataframe"))
        .then(pl.col("failure_case"))
        .when(frame_level & pl.col("index").is_not_null())
        .then(pl.lit("(row)"))
        .when(frame_level)
        .then(pl.lit("(frame)"))
        .otherwise(pl.col("column"))
        .cast(pl.Utf8)
        .alias("column"),
        pl.col("check").cast(pl.Utf8),
        pl.col("failure_case").cast(pl.Utf8).alias("failure_value"),
        pl.col("index").cast(pl.Int64),
    )


def validate_frame(dataset: str, df: pl.DataFrame | pl.LazyFrame) -> ValidationOutcome:
    """Validate ``df`` against the dataset's schema, collecting every failure (lazy validation).

    Never raises for bad data (an unknown dataset name is a caller error and raises
    ``LakeValidationError``). ``failure_count`` counts all failure cases; ``failures`` holds a
    sample; ``message`` says per column and check how many failed.
    """
    schema = schema_for(dataset)
    frame = df.collect() if isinstance(df, pl.LazyFrame) else df
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = _failure_frame(exc.failure_cases)
        summary = (
            cases.group_by("column", "check", maintain_order=True)
            .len()
            .select(pl.format("{} {} x{}", "column", "check", "len"))
            .to_series()
            .to_list()
        )
        return ValidationOutcome(
            passed=False,
            failure_count=cases.height,
            failures=cases.head(FAILURE_SAMPLE),
            message=f"{dataset}: {cases.height} failure(s) in {frame.height} rows: " + "; ".join(summary),
        )
    except Exception as exc:  # a check that could not run (wrong dtype, missing column) is a failure too
        failures = pl.DataFrame(
            {
                "column": [None],
                "check": ["validation could not run"],
                "failure_value": [str(exc)[:500]],
                "index": [None],
            },
            schema=FAILURE_COLUMNS,
        )
        return ValidationOutcome(
            False, 1, failures, f"{dataset}: validation could not run: {type(exc).__name__}: {exc}"
        )
    return ValidationOutcome(
        True, 0, _no_failures(), f"{dataset}: all {frame.height} rows pass the {schema.name} schema"
    )

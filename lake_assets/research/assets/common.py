"""What the research assets share: settings read from the environment, code versions, output names and
small metadata helpers."""

import math
import warnings
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl

REPO_ROOT = Path(__file__).resolve().parents[3]
STRATEGIES_ENV = "LAKE_STRATEGIES"
BACKTEST_START_ENV = "LAKE_BACKTEST_START"
BACKTEST_END_ENV = "LAKE_BACKTEST_END"
#: How far back (calendar days) the features look for history before a day: covers weekends and holidays.
HISTORY_SEARCH_DAYS = 7
#: Bump when the backtest wiring (what is read, how results are stored) changes.
BACKTEST_CODE_VERSION = "1"
LEADERBOARD_CODE_VERSION = "1"
BACKTEST_OUTPUTS = ("backtest_runs", "backtest_trades", "backtest_equity", "signal_matches")
#: Summary columns shown in the UI tables (the stored tables have more).
SUMMARY_COLUMNS = ("sharpe", "sortino", "total_return", "max_drawdown", "hit_rate", "trade_count", "turnover")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _cell(value):
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None  # 6 significant digits on screen
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def table_metadata(frame: pl.DataFrame, columns: list[str], max_rows: int = 30) -> dg.TableMetadataValue:
    """The first ``max_rows`` rows as a table the UI shows inline (NaN as empty, times as ISO text)."""
    columns = [c for c in columns if c in frame.columns]
    types = {c: "float" if frame.schema[c].is_float() else "int" if frame.schema[c].is_integer() else "string" for c in columns}
    records = [dg.TableRecord({c: _cell(v) for c, v in zip(columns, row)}) for row in frame.select(columns).head(max_rows).iter_rows()]
    return dg.MetadataValue.table(records, schema=dg.TableSchema([dg.TableColumn(c, types[c]) for c in columns]))


def _output(value, data_version: dg.DataVersion | None = None, **kwargs) -> dg.Output:
    """``dg.Output``; its ``data_version`` parameter is beta in Dagster 1.13 (used deliberately)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(value, data_version=data_version, **kwargs)

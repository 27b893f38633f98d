"""``lake sql`` as a person sees it: wide results in a vertical layout, ``show tables`` listing the
lake's datasets, and typo hints that suggest a dataset. Runs the real ``lake`` executable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

LAKE = Path(sys.executable).parent / "lake"
WIDE = "select " + ", ".join(f"'value-of-column-{i:02d}' as column_{i:02d}" for i in range(23))


def lake_sql(home: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "LAKE_HOME": str(home), "COLUMNS": str(columns)}
    return subprocess.run([str(LAKE), "sql", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def warm_lake(lake_settings):
    """A lake whose warm file holds one bars_1d partition (and so the internal manifest table)."""
    from datetime import datetime, timezone

    from lake_resources.storage import Lake

    frame = pl.DataFrame({"symbol": ["EURUSD"], "ts": [datetime(2019, 2, 4, tzinfo=timezone.utc)], "close": [1.14]})
    Lake(lake_settings).write("bars_1d", (("symbol", "EURUSD"), ("date", "2019-02-04")), frame, tier="warm")
    return lake_settings.home


def test_wide_result_is_shown_one_record_per_block_with_whole_values(tmp_path):
    """23 columns on an 80-column terminal: no squeezed table; each value appears whole, one
    ``column | value`` line each (psql's \\x layout); ``--layout table`` still forces a table."""
    result = lake_sql(tmp_path / "lake", WIDE)
    assert result.returncode == 0, result.stderr
    assert "-[ RECORD 1 ]" in result.stdout
    for i in range(23):
        assert f"column_{i:02d} | value-of-column-{i:02d}" in result.stdout
    assert "(1 row)" in result.stdout
    forced = lake_sql(tmp_path / "lake", WIDE, "--layout", "table")
    assert forced.returncode == 0 and "RECORD" not in forced.stdout and "┆" in forced.stdout


def test_narrow_result_stays_a_table_and_vertical_can_be_asked_for(tmp_path):
    """Two columns fit: a table. ``-x`` asks for the vertical layout anyway."""
    query = "select 'EURUSD' as symbol, 42 as n"
    table = lake_sql(tmp_path / "lake", query)
    assert table.returncode == 0 and "┆" in table.stdout and "RECORD" not in table.stdout
    vertical = lake_sql(tmp_path / "lake", query, "-x")
    assert vertical.returncode == 0 and "symbol | EURUSD" in vertical.stdout and "n      | 42" in vertical.stdout


def test_typo_hint_suggests_the_lake_dataset(warm_lake):
    """``from tick`` suggests the dataset ``ticks`` (DuckDB's own hint was ``duckdb_logs``)."""
    result = lake_sql(warm_lake, "select * from tick")
    assert result.returncode == 2
    assert 'Did you mean "ticks"?' in result.stderr and "duckdb_logs" not in result.stderr, result.stderr


def test_show_tables_lists_the_lake_datasets_not_internal_tables(warm_lake):
    """``show tables`` lists every dataset of the lake (stored or not) and hides the warm file's
    internal manifest table ``_lake_partitions``."""
    from lake_resources.catalog.datasets import DATASETS

    result = lake_sql(warm_lake, "show tables", "--format", "csv")
    assert result.returncode == 0, result.stderr
    shown = pl.read_csv(result.stdout.encode())
    assert sorted(shown["name"]) == sorted(DATASETS)
    assert "_lake_partitions" not in result.stdout
    assert dict(zip(shown["name"], shown["home_tier"]))["ticks"] == "hot"

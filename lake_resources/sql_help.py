"""What the SQL surface says about the lake itself: ``SHOW TABLES`` lists the lake's datasets (not
the warm file's internal tables), and a misspelt table name is matched against the datasets first."""

from __future__ import annotations

import difflib
import re

import polars as pl

from lake_resources.catalog.datasets import DATASETS

_SHOW_TABLES = re.compile(r"^\s*(show\s+(all\s+)?tables|\.tables)\s*;?\s*$", re.IGNORECASE)
_MISSING = re.compile(r'Table with name "?([^\s"!]+)"? does not exist!(?:\s*Did you mean "[^"]*"\?)?', re.IGNORECASE)


def is_show_tables(query: str) -> bool:
    return bool(_SHOW_TABLES.match(query))


def datasets_table() -> pl.DataFrame:
    """One row per dataset: name, home tier and partitioning (``lake storage`` shows what is stored)."""
    specs = [DATASETS[name] for name in sorted(DATASETS)]
    return pl.DataFrame({
        "name": [s.name for s in specs],
        "home_tier": [s.tier.value for s in specs],
        "partitioned_by": [", ".join(s.partition_by) for s in specs],
    })


def closest_dataset(name: str) -> str | None:
    matches = difflib.get_close_matches(name.lower(), sorted(DATASETS), n=1, cutoff=0.6)
    return matches[0] if matches else None


def with_dataset_hint(message: str) -> str:
    """DuckDB's "Table with name X does not exist! Did you mean ..." with the closest lake dataset
    as the suggestion (DuckDB suggests from its own catalog, e.g. ``duckdb_logs`` for ``tick``)."""
    match = _MISSING.search(message)
    if not match:
        return message
    suggestion = closest_dataset(match.group(1))
    if suggestion is None:
        return message
    return message[: match.start()] + f'Table with name {match.group(1)} does not exist! Did you mean "{suggestion}"?' \
        + message[match.end():]

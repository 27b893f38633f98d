"""How ``lake sql`` shows a result on a terminal: a table when its columns fit the width, else one
record per block (like psql's ``\\x``), so 23 columns are never squeezed to a few characters each."""

from __future__ import annotations

import os
import shutil

import polars as pl

#: Longest text shown for one value (longer values end with "…").
MAX_VALUE_CHARS = 60
LAYOUTS = ("auto", "table", "vertical")


def terminal_width() -> int:
    """``COLUMNS`` when set, else the terminal's width, else 120 (output piped to a file)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return shutil.get_terminal_size((120, 24)).columns


def _text(value) -> str:
    text = "null" if value is None else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def table_width(df: pl.DataFrame, rows: int) -> int:
    """Characters a polars table of ``df``'s first ``rows`` rows needs without squeezing a column."""
    head = df.head(rows)
    width = 1
    for name in df.columns:
        cells = [_text(v) for v in head[name].to_list()]
        width += max([len(name), len(str(df.schema[name])) + 2, *map(len, cells)]) + 3
    return width


def vertical(df: pl.DataFrame, rows: int) -> str:
    """One block per record: ``-[ RECORD n ]---`` then ``column | value`` lines."""
    if df.width == 0:
        return "(no columns)\n"
    label = max(len(c) for c in df.columns)
    out: list[str] = []
    for i, record in enumerate(df.head(rows).iter_rows(named=True), 1):
        out.append(f"-[ RECORD {i} ]" + "-" * max(0, label + 3 - len(f"-[ RECORD {i} ]")))
        out.extend(f"{name:<{label}} | {_text(value)}" for name, value in record.items())
    shown = min(rows, df.height)
    out.append(f"({df.height} row{'s' if df.height != 1 else ''}" + (f", first {shown} shown" if shown < df.height else "") + ")")
    return "\n".join(out) + "\n"


def render(df: pl.DataFrame, rows: int, layout: str = "auto", width: int | None = None) -> str:
    """The result as text: ``table``, ``vertical``, or ``auto`` (a table if it fits ``width``)."""
    width = width or terminal_width()
    if layout == "vertical" or (layout == "auto" and df.height and table_width(df, rows) > width):
        return vertical(df, rows)
    with pl.Config(tbl_rows=rows, tbl_cols=-1, fmt_str_lengths=MAX_VALUE_CHARS, tbl_width_chars=max(width, 40)):
        return str(df) + "\n"

"""The ``where`` language of ``GET /datasets/{name}/rows``: ``column op literal`` terms joined by ``and``.

Never SQL: each term is parsed and turned into a polars expression over a column the dataset really has,
so nothing the caller writes reaches a query string. Grammar (case-insensitive keywords)::

    where   := term ( "and" term )*
    term    := column op literal | column "in" "(" literal ( "," literal )* ")"
    op      := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
    literal := number | 'single-quoted string' (a quote doubled inside) | true | false | null

Examples: ``bid > 1.1435``, ``symbol = 'EURUSD' and tick_count >= 10``, ``symbol in ('EURUSD','XAUUSD')``.
A time column compared with a string takes it as an ISO 8601 time (UTC unless it says otherwise).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import polars as pl

from lake_resources.catalog.validation import LakeValidationError

MAX_WHERE_LENGTH = 2000
MAX_TERMS = 32

_TOKEN = re.compile(
    r"\s*(?:(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![A-Za-z_])"
    r"|(?P<str>'(?:[^']|'')*')"
    r"|(?P<op><=|>=|!=|==|=|<|>)"
    r"|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_OPS = {"=": "eq", "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise LakeValidationError(f"where: cannot read {text[pos:pos + 20]!r} at character {pos + 1}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _literal(token: tuple[str, str]):
    kind, value = token
    if kind == "num":
        return float(value) if any(c in value for c in ".eE") else int(value)
    if kind == "str":
        return value[1:-1].replace("''", "'")
    if kind == "word" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if kind == "word" and value.lower() == "null":
        return None
    raise LakeValidationError(f"where: expected a literal (number, 'string', true, false, null), got {value!r}")


def _coerce(column: str, dtype: pl.DataType, value):
    """A string compared with a time column is an ISO time; other mismatches are refused by name."""
    if value is None:
        return None
    if dtype.is_temporal() and isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise LakeValidationError(f"where: {column} is a time column; {value!r} is not an ISO 8601 time") from None
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    if dtype.is_numeric() and not isinstance(value, (int, float)) or isinstance(value, bool) and dtype != pl.Boolean:
        raise LakeValidationError(f"where: {column} is {dtype}; {value!r} is not a number")
    if dtype == pl.String and not isinstance(value, str):
        raise LakeValidationError(f"where: {column} is a string column; quote the value: '{value}'")
    return value


def _term(column: str, op: str, value) -> pl.Expr:
    col = pl.col(column)
    if value is None:
        if op == "eq":
            return col.is_null()
        if op == "ne":
            return col.is_not_null()
        raise LakeValidationError(f"where: null can only be compared with = or != (column {column})")
    return getattr(col, op)(pl.lit(value))


def parse_where(text: str | None, schema: dict[str, pl.DataType]) -> pl.Expr | None:
    """The polars filter for ``text`` over columns of ``schema``; ``LakeValidationError`` naming the problem."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_WHERE_LENGTH:
        raise LakeValidationError(f"where: longer than {MAX_WHERE_LENGTH} characters")
    tokens = _tokens(text)
    exprs: list[pl.Expr] = []
    i = 0
    while True:
        if i >= len(tokens) or tokens[i][0] != "word":
            raise LakeValidationError(f"where: expected a column name in term {len(exprs) + 1}")
        column = tokens[i][1]
        if column not in schema:
            raise LakeValidationError(f"where: unknown column {column!r}; columns: {', '.join(schema)}")
        dtype = schema[column]
        i += 1
        if i < len(tokens) and tokens[i] == ("word", tokens[i][1]) and tokens[i][1].lower() == "in":
            if i + 1 >= len(tokens) or tokens[i + 1] != ("punct", "("):
                raise LakeValidationError(f"where: expected '(' after {column} in")
            i += 2
            values = []
            while True:
                if i >= len(tokens):
                    raise LakeValidationError(f"where: unclosed list after {column} in")
                values.append(_coerce(column, dtype, _literal(tokens[i])))
                i += 1
                if i < len(tokens) and tokens[i] == ("punct", ","):
                    i += 1
                    continue
                if i < len(tokens) and tokens[i] == ("punct", ")"):
                    i += 1
                    break
                raise LakeValidationError(f"where: expected ',' or ')' in the list after {column} in")
            exprs.append(pl.col(column).is_in(values))
        else:
            if i >= len(tokens) or tokens[i][0] != "op":
                raise LakeValidationError(f"where: expected an operator (=, !=, <, <=, >, >=, in) after {column}")
            op = _OPS[tokens[i][1]]
            if i + 1 >= len(tokens):
                raise LakeValidationError(f"where: expected a value after {column} {tokens[i][1]}")
            exprs.append(_term(column, op, _coerce(column, dtype, _literal(tokens[i + 1]))))
            i += 2
        if len(exprs) > MAX_TERMS:
            raise LakeValidationError(f"where: more than {MAX_TERMS} terms")
        if i == len(tokens):
            break
        if tokens[i][0] == "word" and tokens[i][1].lower() == "and":
            i += 1
            continue
        raise LakeValidationError(f"where: expected 'and' between terms, got {tokens[i][1]!r} (only 'and' joins terms)")
    expr = exprs[0]
    for e in exprs[1:]:
        expr = expr & e
    return expr

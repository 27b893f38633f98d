"""The read-only, lake-confined DuckDB session behind ``lake sql`` (and any SQL the lake serves).

Two independent layers, so neither alone has to be perfect:

1. The statement check (``check_read_only``): a query is one or more ``SELECT`` statements (``WITH``,
   ``FROM``, ``VALUES``, ``SHOW``, ``DESCRIBE``, ``SUMMARIZE`` and ``PRAGMA show_tables`` parse as
   ``SELECT``), or an ``EXPLAIN`` of one. ``COPY``, ``ATTACH``, ``EXPORT``, ``SET``, ``INSTALL``/``LOAD``,
   ``CREATE``, ``INSERT``, ``CALL``/``CHECKPOINT`` and every other kind are refused before DuckDB runs
   anything. This is what stops a ``COPY ... TO`` into the lake's own (allowed) directories.
2. The session itself (``lock_down``): the warm file opened read-only as the main database, then
   ``allowed_directories`` limited to the hot tier and the cold tier (its local directory or its
   ``s3://bucket/prefix/cold/``), ``enable_external_access = false`` (set after ``allowed_directories``:
   DuckDB refuses to change that list once external access is off), extension auto-install/auto-load
   off, unredacted secrets off, and ``lock_configuration = true``, so no later ``SET``/``RESET``/
   ``PRAGMA`` changes any of it. httpfs is loaded from the wheel before the lock: no extension can be
   installed or loaded afterwards.

Secrets: the S3 key lives only in a temporary DuckDB secret scoped to the lake's bucket prefix;
``duckdb_secrets()`` redacts it and unredacted display stays off. httpfs's legacy ``s3_*`` settings
default to ``AWS_*`` environment variables when it loads, so ``current_setting('s3_secret_access_key')``
would print the key: they are blanked before the lock.

Checked with DuckDB 1.5.5:
- views over ``read_parquet`` of allowed files, and the read-only warm catalogue, keep working after the
  lock; ``glob``/``read_text``/``read_csv`` outside the allowed directories, ``ATTACH`` of another file and
  ``EXPORT DATABASE`` fail with a permission error;
- ``allowed_directories`` grants writes as well as reads (``COPY`` into the hot tier succeeds), and an
  attached database's own files (``warm.duckdb.wal``) stay writable whatever ``allowed_paths`` says: the
  statement check is the barrier there;
- ``duckdb.connect(path)`` shares one database instance per file within a process, so settings set on
  it would reach every other connection to the warm file: the session is an in-memory instance with the
  warm file ``ATTACH``ed ``READ_ONLY`` (then ``USE warm``, which also forbids ``DETACH``);
- a glob pattern is checked as given and as expanded: an escaped root must be allowed in that form too;
- ``allow_persistent_secrets`` cannot change once a secret exists (it is not needed: persisting a
  secret writes under ``~/.duckdb``, outside the allowed directories, and ``CREATE`` is refused).
"""

from __future__ import annotations

import re

import duckdb

from lake_resources.catalog.validation import LakeValidationError

_READ_KINDS = {duckdb.StatementType.SELECT}
_EXPLAIN = re.compile(r"^\s*explain\s+(?:analyze\s+)?(.*)$", re.IGNORECASE | re.DOTALL)
#: DuckDB's glob characters: a path holding one is expanded, not taken literally (``[`` opens a class).
_GLOB_CHARS = re.compile(r"([*?\[])")


def check_read_only(query: str) -> None:
    """Refuse anything but read-only queries, with one line naming the statement kind."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise LakeValidationError(f"invalid SQL: {str(exc).splitlines()[0]}") from None
    if not statements:
        raise LakeValidationError("empty query: give one SELECT statement")
    for statement in statements:
        kind = statement.type
        if kind == duckdb.StatementType.EXPLAIN:
            inner = _EXPLAIN.match(statement.query)
            if inner and inner.group(1).strip():
                try:
                    kinds = {s.type for s in duckdb.extract_statements(inner.group(1))}
                except duckdb.Error:
                    kinds = {kind}
                if kinds <= _READ_KINDS:
                    continue
        elif kind in _READ_KINDS:
            continue
        raise LakeValidationError(
            f"read-only: {kind.name} statements are refused (only SELECT, WITH, FROM, SHOW, DESCRIBE, "
            "SUMMARIZE and EXPLAIN of a SELECT run over the lake)"
        )


def literal_path(path: str) -> str:
    """A path DuckDB takes literally in ``read_parquet``: each glob character as a one-character class
    (``g*b`` -> ``g[*]b``), so a ``LAKE_HOME`` like ``/x/g*b/lake`` never reads ``/x/glob/lake``."""
    return _GLOB_CHARS.sub(r"[\1]", path)


def sql_path(path: str) -> str:
    """A storage path as a SQL string literal for ``read_parquet``: literal (see above) and quoted."""
    return "'" + literal_path(path).replace("'", "''") + "'"


def _directory(root: str) -> str:
    return root.rstrip("/") + "/"


def lock_down(con: duckdb.DuckDBPyConnection, readable_roots: list[str]) -> None:
    """Confine ``con`` to ``readable_roots`` (directories or ``s3://`` prefixes) and lock its configuration.

    Call after everything that needs the network, extensions or other files (httpfs, the secret, views).
    """
    # DuckDB checks both the pattern given and every file it expands to: a root with glob characters is
    # allowed in its escaped form too (what ``sql_path`` hands over), and still matches only itself.
    roots = {_directory(form) for r in readable_roots for form in (r, literal_path(r))}
    dirs = ", ".join("'" + r.replace("'", "''") + "'" for r in sorted(roots))
    for statement in (
        f"SET allowed_directories = [{dirs}]",  # before enable_external_access = false (DuckDB's order)
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET allow_community_extensions = false",
        "SET allow_unredacted_secrets = false",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ):
        con.execute(statement)

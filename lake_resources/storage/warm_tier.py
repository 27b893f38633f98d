"""The warm tier: one DuckDB table per dataset, written a partition per transaction with its manifest
row, retried while another process holds the file, repaired around corrupted blocks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import duckdb
import polars as pl

from lake_resources.catalog.datasets import (
    DATASETS,
    DatasetSpec,
    Partition,
    Tier,
    parse_partition_path,
    partition_label,
    partition_path,
)
from lake_resources.storage.encoding import _schema_json, cast_to_schema, encode_parquet, sha256
from lake_resources.storage.layout import (
    MANIFEST_TABLE,
    LakeStorageError,
    PartitionInfo,
    PartitionNotFound,
    _now,
    _ts_range,
    day_bounds,
)

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Warm tier (DuckDB)
# --------------------------------------------------------------------------------------------
def _is_corruption(exc: BaseException | None) -> bool:
    """DuckDB found a block whose checksum does not match (anywhere in the exception's chain)."""
    while exc is not None:
        if "corrupt database file" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return ("lock" in text and ("could not set" in text or "conflicting" in text)) or "conflict" in text


def _rollback(con) -> None:
    """Roll back after a failed statement without hiding why it failed.

    A COMMIT that fails (e.g. "No space left on device" writing the WAL) ends the transaction
    itself; a ROLLBACK then raises "no transaction is active", which would replace the real error.
    """
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as exc:
        _log.debug("rollback after a failed warm write: %s", exc)


class WarmTier:
    tier = Tier.WARM

    def __init__(self, path: Path, lock_timeout: float = 600.0):
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.label = f"warm tier ({self.path})"
        self._catalogue: tuple[tuple, dict[str, dict[Partition, dict]]] | None = None

    def _file_state(self) -> tuple:
        """What changes whenever any process commits to the file: the database and its WAL."""
        state: list = []
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                st = os.stat(path)
                state.append((st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                state.append(None)
        if state[0] is not None:
            # DuckDB's two database headers carry a checkpoint counter: a checkpoint within the
            # same filesystem timestamp tick still changes them.
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(4096)
                    state.append(hashlib.blake2b(fh.read(8192), digest_size=16).digest())
            except FileNotFoundError:
                state[0] = None
        return tuple(state)

    def _invalidate(self) -> None:
        self._catalogue = None

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection, retried while another process holds the file's write lock (one writer per file)."""
        if read_only and not self.path.exists():
            raise PartitionNotFound(f"{self.label} does not exist yet")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.Error as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    raise LakeStorageError(f"{self.label}: cannot open: {exc}") from exc
                time.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 1.0)
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()

    def attach_read_only(self, con: duckdb.DuckDBPyConnection, alias: str) -> None:
        """ATTACH the file read-only to ``con`` (an instance of its own: settings changed on ``con``, such
        as ``lake sql``'s lock-down, reach no other connection), retried like ``connect``."""
        if not self.path.exists():
            raise PartitionNotFound(f"{self.label} does not exist yet")
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        quoted = str(self.path).replace("'", "''")
        while True:
            try:
                con.execute(f"ATTACH '{quoted}' AS \"{alias}\" (READ_ONLY)")
                return
            except duckdb.Error as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    raise LakeStorageError(f"{self.label}: cannot open: {exc}") from exc
                time.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 1.0)

    def _with_write_retry(self, fn):
        self._invalidate()  # this process's own write must never be served from a stale catalogue
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                with self.connect() as con:
                    return fn(con)
            except (duckdb.TransactionException, duckdb.IOException) as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    raise LakeStorageError(f"{self.label}: write failed: {exc}") from exc
                time.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 1.0)
            finally:
                self._invalidate()

    @staticmethod
    def _ensure_manifest(con) -> None:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS {MANIFEST_TABLE} (
                dataset VARCHAR, partition VARCHAR, rows BIGINT, sha256 VARCHAR, bytes BIGINT,
                written_at VARCHAR, min_ts VARCHAR, max_ts VARCHAR, schema VARCHAR,
                PRIMARY KEY (dataset, partition))"""
        )

    @staticmethod
    def _where(spec: DatasetSpec, partition: Partition) -> tuple[str, list]:
        clauses, params = [], []
        for field, value in partition:
            if field == "date" and spec.time_column:
                lo, hi = day_bounds(value)
                clauses.append(f'"{spec.time_column}" >= ? AND "{spec.time_column}" < ?')
                params += [lo, hi]
            else:
                clauses.append(f'"{field}" = ?')
                params.append(value)
        return (" AND ".join(clauses) or "TRUE"), params

    def table_exists(self, con, name: str) -> bool:
        return bool(con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [name]
        ).fetchone()[0])

    def write(self, spec: DatasetSpec, partition: Partition, df: pl.DataFrame, data: bytes | None = None) -> PartitionInfo:
        data = data if data is not None else encode_parquet(df)
        lo, hi = _ts_range(spec, df)
        info = PartitionInfo(
            dataset=spec.name, tier=Tier.WARM.value, partition=partition, rows=df.height,
            sha256=sha256(data), bytes=len(data), uri=f"duckdb://{self.path}#{spec.name}/{partition_path(partition)}",
            written_at=_now(), min_ts=lo, max_ts=hi,
        )
        incoming = df.to_arrow()
        table = spec.name

        def txn(con):
            con.execute("BEGIN TRANSACTION")
            try:
                self._ensure_manifest(con)
                con.register("_incoming", incoming)
                if not self.table_exists(con, table):
                    con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM _incoming LIMIT 0')
                existing = {r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}
                described = con.execute("DESCRIBE _incoming").fetchall()
                for name, dtype, *_ in described:
                    if name not in existing:  # schema evolution: new columns are added, never dropped
                        con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {dtype}')
                where, params = self._where(spec, partition)
                con.execute(f'DELETE FROM "{table}" WHERE {where}', params)
                if incoming.num_rows:
                    con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _incoming')
                con.execute(
                    f"INSERT OR REPLACE INTO {MANIFEST_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [spec.name, partition_path(partition), info.rows, info.sha256, info.bytes,
                     info.written_at, lo, hi, _schema_json(df)],
                )
                con.execute("COMMIT")
            except Exception:
                _rollback(con)
                raise
            finally:
                with contextlib.suppress(duckdb.Error):  # the connection may be unusable after a failed commit
                    con.unregister("_incoming")

        try:
            try:
                self._with_write_retry(txn)
            except (duckdb.Error, LakeStorageError) as exc:
                if not _is_corruption(exc):
                    raise
                # The delete must read the old rows' blocks: a corrupted one makes re-materializing fail.
                # Rebuild the table without this partition, then write it (the repair).
                self.rebuild_without(spec, partition)
                self._with_write_retry(txn)
        except duckdb.Error as exc:
            raise LakeStorageError(f"{self.label}: writing {spec.name} {partition_label(partition)} failed: {exc}") from exc
        return info

    def rebuild_without(self, spec: DatasetSpec, partition: Partition) -> None:
        """Copy every other partition of ``spec``'s table into a new table, which then replaces it: the
        rows of ``partition`` (and the corrupted blocks only they use) are left behind. If another
        partition's rows cannot be read either, nothing is changed and the error names them."""
        others = [p for p in self.list(spec) if p != partition]  # the catalogue before connecting
        table, staged = spec.name, f"{spec.name}__rebuild"
        order = f'"{spec.time_column}", rowid' if spec.time_column else "rowid"

        def run(con):
            con.execute(f'DROP TABLE IF EXISTS "{staged}"')
            con.execute(f'CREATE TABLE "{staged}" AS SELECT * FROM "{table}" LIMIT 0')
            unreadable = []
            for p in others:  # one statement each: a partition's rows either copy whole or not at all
                where, params = self._where(spec, p)
                try:
                    con.execute(f'INSERT INTO "{staged}" SELECT * FROM "{table}" WHERE {where} ORDER BY {order}', params)
                except duckdb.Error:
                    unreadable.append(partition_label(p))
            if unreadable:
                con.execute(f'DROP TABLE "{staged}"')
                raise LakeStorageError(
                    f"{self.label}: {spec.name} has corrupted blocks that other partitions use too "
                    f"({'; '.join(unreadable[:5])}{' …' if len(unreadable) > 5 else ''}): nothing was changed; "
                    "restore warm.duckdb from a backup, or re-materialize those partitions after this one")
            con.execute("BEGIN TRANSACTION")
            con.execute(f'DROP TABLE "{table}"')
            con.execute(f'ALTER TABLE "{staged}" RENAME TO "{table}"')
            con.execute("COMMIT")

        _log.warning("%s: rebuilding table %s without %s (corrupted blocks)", self.label, table, partition_label(partition))
        self._with_write_retry(run)

    def manifests(self, spec: DatasetSpec) -> dict[Partition, dict]:
        """The warm manifests of one dataset, from a catalogue of all datasets that is re-read only
        when the file changed (so locating partitions does not open DuckDB on every read)."""
        state = self._file_state()
        if state[0] is None:
            return {}
        if self._catalogue is None or self._catalogue[0] != state:
            self._catalogue = (state, self._read_catalogue())
        return self._catalogue[1].get(spec.name, {})

    def _read_catalogue(self) -> dict[str, dict[Partition, dict]]:
        with self.connect(read_only=True) as con:
            if not self.table_exists(con, MANIFEST_TABLE):
                return {}
            rows = con.execute(
                f"SELECT dataset, partition, rows, sha256, bytes, written_at, min_ts, max_ts, schema FROM {MANIFEST_TABLE}"
            ).fetchall()
        out: dict[str, dict[Partition, dict]] = {}
        for dataset, part, nrows, digest, nbytes, written, lo, hi, schema in rows:
            spec = DATASETS.get(dataset)
            if spec is None:
                continue  # a dataset this version of the code does not know
            p = parse_partition_path(spec, part) if spec.partition_by else ()
            out.setdefault(dataset, {})[p] = {"rows": nrows, "sha256": digest, "bytes": nbytes, "written_at": written,
                                              "min_ts": lo, "max_ts": hi, "schema": schema, "partition": part}
        return out

    def list(self, spec: DatasetSpec, symbols: Iterable[str] | None = None) -> list[Partition]:
        parts = list(self.manifests(spec))
        if symbols is not None and "symbol" in spec.partition_by:
            wanted = set(symbols)
            parts = [p for p in parts if dict(p)["symbol"] in wanted]
        return sorted(parts)

    def manifest(self, spec: DatasetSpec, partition: Partition) -> dict | None:
        return self.manifests(spec).get(partition)

    def read(self, spec: DatasetSpec, partition: Partition) -> pl.DataFrame:
        return self.read_partitions(spec, [partition])[0]

    def read_partitions(self, spec: DatasetSpec, partitions: Sequence[Partition]) -> list[pl.DataFrame]:
        """Several partitions, each exactly as ``read`` returns it, through one read-only connection:
        opening the file costs more (~12 ms) than reading a day of bars from it."""
        if not partitions:
            return []
        # Manifests before connecting: with the connection open, closing any other handle on the file
        # would drop this process's lock on it (POSIX lock semantics, as in LakeClient.read).
        catalogue = self.manifests(spec)
        missing = [partition_label(p) for p in partitions if p not in catalogue]
        if missing:
            raise PartitionNotFound(f"{spec.name} {'; '.join(missing)} not in the {self.label}")
        order = f'"{spec.time_column}", rowid' if spec.time_column else "rowid"
        tables = []
        with self.connect(read_only=True) as con:
            present = self.table_exists(con, spec.name)
            for partition in partitions:
                where, params = self._where(spec, partition)
                tables.append(con.execute(f'SELECT * FROM "{spec.name}" WHERE {where} ORDER BY {order}', params).pl()
                              if present else pl.DataFrame())
        frames = []
        for partition, table in zip(partitions, tables):
            schema = catalogue[partition]["schema"]
            df = cast_to_schema(table, schema)
            frames.append(df.select([c for c in json.loads(schema) if c in df.columns]))
        return frames

    def delete(self, spec: DatasetSpec, partition: Partition) -> None:
        def txn(con):
            con.execute("BEGIN TRANSACTION")
            try:
                self._ensure_manifest(con)
                if self.table_exists(con, spec.name):
                    where, params = self._where(spec, partition)
                    con.execute(f'DELETE FROM "{spec.name}" WHERE {where}', params)
                con.execute(f"DELETE FROM {MANIFEST_TABLE} WHERE dataset = ? AND partition = ?",
                            [spec.name, partition_path(partition)])
                con.execute("COMMIT")
            except Exception:
                _rollback(con)
                raise

        if self.path.exists():
            self._with_write_retry(txn)

"""``LakeClient``: one read API over every tier, and the SQL surface (``lake sql``).

Each partition is read once, from the fastest tier that holds it (hot, then warm, then cold), so a
read spanning tiers, or one taken while a partition is being moved, returns every row exactly once.
Symbol and date filters prune partitions before any file is opened; time filters and column
projections are pushed into the Parquet scans and bound as parameters in DuckDB queries.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

import duckdb
import polars as pl
import pyarrow as pa

from lake_resources.catalog.datasets import DATASETS, DatasetSpec, Tier, dataset_spec
from lake_resources.catalog.validation import LakeValidationError, TimeLike, time_bound, validate_symbol
from lake_resources.lifecycle.damage import quick_check
from lake_resources.settings import LakeSettings
from lake_resources.sql_help import datasets_table, is_show_tables, with_dataset_hint
from lake_resources.sqlsafe import check_read_only, lock_down, sql_path
from lake_resources.storage import (
    ColdTierUnreachable,
    ColdTierUnreachableWarning,
    Lake,
    Located,
    cast_to_schema,
)
from lake_resources.storage.cold_record import ColdOutage
from lake_resources.storage.layout import Damage, PartitionDamaged, warn_skipped


class QueryTimeout(RuntimeError):
    """A SQL query ran past its time limit and was stopped."""


class LakeClient:
    """Read any dataset by symbols, time range and columns, from whichever tier holds each partition."""

    def __new__(cls, settings: LakeSettings | None = None, lake: Lake | None = None, *, url: str | None = None,
                token: str | None = None):
        """``LakeClient(url="http://host:8787", token=...)`` reads a ``lake serve`` server over the network
        with the same calls (``lake_resources.serve.remote.RemoteLakeClient``)."""
        if url is not None:
            from lake_resources.serve.remote import RemoteLakeClient

            return RemoteLakeClient(url, token)
        return super().__new__(cls)

    def __init__(self, settings: LakeSettings | None = None, lake: Lake | None = None, *, url: str | None = None,
                 token: str | None = None):
        self.lake = lake or Lake(settings or LakeSettings.from_env())
        self.settings = self.lake.settings

    # discovery -------------------------------------------------------------------------
    def datasets(self) -> list[str]:
        return sorted(DATASETS)

    def partitions(self, dataset: str, *, symbols: Iterable[str] | None = None, start: TimeLike | None = None,
                   end: TimeLike | None = None, tier: str | None = None) -> list[Located]:
        spec = dataset_spec(dataset)
        if isinstance(symbols, str):
            symbols = [symbols]
        syms = self.check_symbols(spec.name, symbols) if symbols is not None else None
        lo = time_bound(start, end=False).date() if start is not None else None
        hi = (time_bound(end, end=True) - timedelta(microseconds=1)).date() if end is not None else None
        return self.lake.locate(spec, syms, lo, hi, tier)

    def check_symbols(self, dataset: str, symbols: Iterable[str]) -> list[str]:
        """Canonical ``symbols``; ``LakeValidationError`` for one that is neither in ``LAKE_SYMBOLS`` nor
        stored in ``dataset`` (unknown to the catalogue, or known but not ingested: the message says how
        to add it). Datasets not partitioned by symbol take any valid symbol."""
        spec = dataset_spec(dataset)
        if "symbol" not in spec.partition_by:
            return [validate_symbol(s) for s in symbols]
        return self.settings.require_symbols(symbols, stored=lambda s: bool(self.lake.locate(spec, [s])))

    # reads -------------------------------------------------------------------------------
    def read(
        self,
        dataset: str,
        *,
        symbols: str | Iterable[str] | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        columns: Sequence[str] | None = None,
        tier: str | None = None,
        lazy: bool = False,
        on_damage: str = "raise",
    ) -> pl.DataFrame | pl.LazyFrame:
        """Rows of ``dataset`` with ``start <= ts < end`` (a date bound covers its whole day).

        ``tier`` restricts the read to one tier (e.g. ``"hot"`` for fast iteration); by default all
        tiers are searched. Rows come ordered by partition (symbol, then date) and by time within.

        A read that fails on damaged partitions (a truncated file, a corrupted warm block) raises
        ``PartitionDamaged`` naming each one; ``on_damage="skip"`` reads around them instead, with a
        ``DamagedPartitionWarning`` naming each. (``lazy=True``: errors surface at ``collect``, unnamed.)
        """
        if on_damage not in ("raise", "skip"):
            raise LakeValidationError(f"on_damage must be 'raise' or 'skip', got {on_damage!r}")
        spec = dataset_spec(dataset)
        if isinstance(symbols, str):
            symbols = [symbols]
        located = self.partitions(dataset, symbols=symbols, start=start, end=end, tier=tier)
        t0 = time_bound(start, end=False) if start is not None else None
        t1 = time_bound(end, end=True) if end is not None else None
        if lazy:
            return self._read_located(spec, located, t0, t1, columns)
        try:
            return self._read_located(spec, located, t0, t1, columns).collect()
        except LakeValidationError:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised as is unless damaged partitions explain it
            damaged = quick_check(self.lake, spec, located)
            if not damaged:
                raise
            if on_damage == "raise":
                raise PartitionDamaged(damaged, str(exc)) from exc
        bad = {(d.partition, d.tier) for d in damaged}
        warn_skipped(damaged)
        kept = [l for l in located if (l.partition, l.tier.value) not in bad]
        try:
            return self._read_located(spec, kept, t0, t1, columns).collect()
        except Exception as exc:  # noqa: BLE001 - e.g. a corrupted warm block shared with a good partition
            raise PartitionDamaged(damaged, str(exc)) from exc

    def _read_located(self, spec: DatasetSpec, located: list[Located], t0, t1,
                      columns: Sequence[str] | None) -> pl.LazyFrame:
        frames: list[pl.LazyFrame] = []
        # Every lookup of the warm file happens before the read connection opens: closing any other
        # handle on the file would drop this process's lock on it (POSIX lock semantics).
        warm_manifests = self.lake.warm.manifests(spec) if any(l.tier is Tier.WARM for l in located) else {}
        with contextlib.ExitStack() as stack:
            warm_con = None
            # Runs of consecutive partitions from one source, in partition order, so rows come out
            # ordered by partition whichever tiers (or cold month files) hold them.
            for (t, month), locs in _segments(located):
                if t is Tier.WARM:
                    if warm_con is None:
                        warm_con = stack.enter_context(self.lake.warm.connect(read_only=True))
                    frames.append(self._read_warm(spec, locs, t0, t1, columns, warm_con, warm_manifests).lazy())
                    continue
                store = self.lake.tier(t)
                if month is not None:
                    symbol = dict(locs[0].partition)["symbol"]
                    lf = store.scan([store.month_uri(spec, symbol, month)])
                    lf = lf.filter(days_filter(spec.time_column, [dict(l.partition)["date"] for l in locs]))
                else:
                    lf = store.scan([store.uri(spec, loc.partition) for loc in locs])
                lf = self._filter(spec, lf, t0, t1)
                if columns:
                    lf = lf.select(list(columns))
                frames.append(lf)
        if not frames:
            return self._empty(spec, columns)
        if len(frames) == 1:
            return frames[0]
        return pl.concat(frames, how="diagonal_relaxed")

    def _empty(self, spec: DatasetSpec, columns: Sequence[str] | None) -> pl.LazyFrame:
        return pl.LazyFrame(schema={c: pl.Null for c in columns} if columns else None)

    @staticmethod
    def _filter(spec: DatasetSpec, lf: pl.LazyFrame, t0: datetime | None, t1: datetime | None) -> pl.LazyFrame:
        col = spec.time_column
        if col and t0 is not None:
            lf = lf.filter(pl.col(col) >= t0)
        if col and t1 is not None:
            lf = lf.filter(pl.col(col) < t1)
        return lf

    def _read_warm(self, spec: DatasetSpec, locs: list[Located], t0, t1, columns, con, manifests: dict) -> pl.DataFrame:
        schema = next((manifests[l.partition]["schema"] for l in locs if l.partition in manifests), None)
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        clauses, params = [], []
        if spec.partition_by:
            # Only the partitions this read resolved to the warm tier (others come from hot/cold).
            clauses.append(f"{partition_key_sql(spec)} IN (SELECT unnest(?))")
            params.append([partition_key_value(l.partition) for l in locs])
            days = sorted(dict(l.partition)["date"] for l in locs) if "date" in spec.partition_by else []
            if days:  # also bound the time range, so DuckDB can skip row groups by zone maps
                lo, hi = time_bound(days[0], end=False), time_bound(days[-1], end=True)
                t0 = max(t0, lo) if t0 else lo
                t1 = min(t1, hi) if t1 else hi
        if spec.time_column and t0 is not None:
            clauses.append(f'"{spec.time_column}" >= ?')
            params.append(t0)
        if spec.time_column and t1 is not None:
            clauses.append(f'"{spec.time_column}" < ?')
            params.append(t1)
        where = " AND ".join(clauses) or "TRUE"
        keys = [f'"{f}"' for f in spec.partition_by if f != "date"]
        keys += [f'"{spec.time_column}"'] if spec.time_column else []
        order = " ORDER BY " + ", ".join(keys + ["rowid"])
        query = f'SELECT {cols} FROM "{spec.name}" WHERE {where}{order}'
        return cast_to_schema(con.execute(query, params).pl(), schema)

    # SQL ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def duckdb(self, datasets: Iterable[str] | None = None, *, exclude: Iterable[Damage] = (),
               tripwires: Iterable[Damage] = (),
               cold_outages: list[ColdOutage] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """The read-only session ``lake sql`` runs on: one temporary view per dataset spanning all tiers.

        An in-memory DuckDB with the warm file attached read-only as ``warm`` (the default catalogue),
        then confined to the lake and locked (``sqlsafe.lock_down``): no file outside the hot and cold
        tiers can be read, no setting changed, no extension loaded. Its own instance, so the lock never
        reaches another connection of this process. Statements are checked by ``sql``, not here:
        user SQL goes through ``sql``. ``exclude``: damaged partitions the views leave out;
        ``tripwires``: of those, the ones whose rows fail a query that needs them (see ``_tripwire_sql``).
        With the S3 cold tier down, the views come from hot and warm, and the partitions the lake's cold
        record says only cold holds become tripwires too (``_cold_tripwire_sql``); each outage is
        appended to ``cold_outages`` (given: no warning here) or warned about.
        """
        warm_exists = self.lake.warm.path.exists()
        skip = {(d.dataset, d.partition, d.tier) for d in exclude}
        # All catalogue lookups first: they open the warm file themselves (see read()).
        names = DATASETS if datasets is None else [dataset_spec(d).name for d in datasets]
        trips = list(tripwires)
        outages = [] if cold_outages is None else cold_outages
        views = {name: self._view_sql(dataset_spec(name), warm_exists, skip, [d for d in trips if d.dataset == name],
                                      outages)
                 for name in names}
        if cold_outages is None:
            warn_cold_outages(outages)
        with contextlib.closing(duckdb.connect()) as con:
            con.execute("SET TimeZone = 'UTC'")
            if warm_exists:
                self.lake.warm.attach_read_only(con, "warm")
                con.execute("USE warm")
            if self.settings.cold_is_s3:
                from lake_resources.storage.s3 import configure_duckdb_s3

                configure_duckdb_s3(con, self.settings)
            for name, view in views.items():
                if view:
                    con.execute(f'CREATE TEMP VIEW "{name}" AS {view}')
            lock_down(con, [str(self.lake.hot.root), self.lake.cold.root])
            yield con

    def _view_sql(self, spec: DatasetSpec, warm_exists: bool, skip: set = frozenset(),
                  tripwires: Sequence[Damage] = (), cold_outages: list[ColdOutage] | None = None) -> str | None:
        outages: list[ColdOutage] = []
        located = [l for l in self.lake.locate(spec, cold_outages=outages)
                   if (spec.name, l.partition, l.tier.value) not in skip]
        if cold_outages is not None:
            cold_outages.extend(outages)
        parts: list[str] = []
        for t in (Tier.HOT, Tier.COLD):
            store = self.lake.tier(t)
            files = [store.uri(spec, l.partition) for l in located if l.tier is t and l.month is None]
            if files:
                listing = ", ".join(sql_path(f) for f in files)
                parts.append(f"SELECT * FROM read_parquet([{listing}], union_by_name = true)")
        # Days served by cold month files: each file filtered to the days no daily copy shadows.
        month_days: dict[tuple[str, str], list[str]] = {}
        for l in located:
            if l.month is not None:
                fields = dict(l.partition)
                month_days.setdefault((fields["symbol"], l.month), []).append(fields["date"])
        for (symbol, month), days in sorted(month_days.items()):
            uri = self.lake.cold.month_uri(spec, symbol, month)
            parts.append(f"SELECT * FROM read_parquet({sql_path(uri)}) WHERE {days_where_sql(spec.time_column, days)}")
        if warm_exists:
            warm_parts = {l.partition for l in located if l.tier is Tier.WARM}
            shadowed = [p for p in self.lake.warm.list(spec) if p not in warm_parts]
            if warm_parts or shadowed:
                where = ""
                if shadowed and spec.partition_by:
                    keys = ", ".join(f"'{_sql_str(partition_key_value(p))}'" for p in shadowed)
                    where = f" WHERE {partition_key_sql(spec)} NOT IN ({keys})"
                if warm_parts or where:
                    parts.append(f'SELECT * FROM warm."{spec.name}"{where}')
        parts += [self._tripwire_sql(spec, d) for d in tripwires]
        parts += [self._cold_tripwire_sql(spec, o, located) for outage in outages for o in _by_symbol(outage)]
        if not parts:
            return None
        return " UNION ALL BY NAME ".join(parts)

    def _tripwire_sql(self, spec: DatasetSpec, damage: Damage) -> str:
        """A branch standing in for a damaged partition's rows: its symbol is the partition's, every other
        column (and the one row itself) raises an error naming the partition. DuckDB prunes the branch
        when a query's filter rules the symbol out, so a query over other symbols runs; any query that
        would need the partition's rows fails naming it. Only for partitions with a known schema and a
        symbol field (``sql`` checks ``can_trip``)."""
        fields = dict(damage.partition)
        raise_it = f"error('{_sql_str('damaged partition ' + damage.describe())}')"
        cols = [f"'{_sql_str(fields['symbol'])}' AS \"symbol\""]
        cols += [f'{raise_it} AS "{c}"' for c in self._schema_of(spec, damage) if c != "symbol"]
        return f"SELECT {', '.join(cols)} FROM range(1) WHERE {raise_it} IS NULL"

    def _cold_tripwire_sql(self, spec: DatasetSpec, outage: ColdOutage, located: list[Located]) -> str:
        """Like ``_tripwire_sql``, for the cold partitions of one symbol while the cold tier is down: a
        query filtered to other symbols prunes the branch; one that needs them fails with
        ``outage.error()`` (``sql`` turns it into ``ColdTierUnreachable``)."""
        raise_it = f"error('{_sql_str(COLD_TRIPWIRE + outage.error())}')"
        columns = self.lake.cold.record.columns(spec) if self.lake.cold.record is not None else []
        if not columns:  # never written from here: the columns of a copy in hot or warm, if any
            columns = next((self._schema_of(spec, Damage(spec.name, l.partition, l.tier.value, "", ""))
                            for l in located if l.tier is not Tier.COLD), [])
        symbol = dict(outage.needed[0]).get("symbol") if outage.needed else None
        cols = [f"'{_sql_str(symbol)}' AS \"symbol\""] if symbol else []
        cols += [f'{raise_it} AS "{c}"' for c in columns if not (symbol and c == "symbol")]
        return f"SELECT {', '.join(cols) or raise_it + ' AS _cold'} FROM range(1) WHERE {raise_it} IS NULL"

    def _schema_of(self, spec: DatasetSpec, damage: Damage) -> list[str]:
        manifest = self.lake.manifest(spec, damage.partition, damage.tier) if damage.partition else None
        schema = (manifest or {}).get("schema")
        return list(json.loads(schema)) if schema else []

    def can_trip(self, damage: Damage) -> bool:
        spec = DATASETS.get(damage.dataset)
        return (spec is not None and "symbol" in spec.partition_by
                and "symbol" in self._schema_of(spec, damage))

    def sql(self, query: str, params: Sequence | None = None, *, skip_damaged: bool = False,
            max_rows: int | None = None, timeout: float | None = None) -> pl.DataFrame:
        """Run read-only SQL over the lake's views: the one way the lake runs SQL it is given.

        Only SELECT-type statements run (``sqlsafe.check_read_only``), in the locked session of
        ``duckdb()``. When a query fails on damaged partitions, it runs again with each damaged
        partition replaced by a tripwire (``_tripwire_sql``). A query that does not need their rows (one
        filtered to other symbols) then answers, with a ``DamagedPartitionWarning`` naming them. One that
        needs them raises ``PartitionDamaged`` naming each. ``skip_damaged=True`` leaves them out instead,
        also with a warning naming each.

        ``max_rows``: fetch at most ``max_rows + 1`` rows (the extra one tells the caller it was cut), so a
        huge result never sits in memory whole. ``timeout``: seconds before the query is interrupted
        (``QueryTimeout``). ``lake serve`` sets both.
        """
        if is_show_tables(query):  # the lake's datasets, not the session's internal tables
            return datasets_table()
        check_read_only(query)
        # Views only for the datasets the query names: each view lists its partitions across tiers.
        named = [d for d in DATASETS if re.search(rf"\b{d}\b", query)]
        try:
            return self._run_sql(named, query, params, max_rows=max_rows, timeout=timeout)
        except LakeValidationError:
            raise
        except duckdb.Error as exc:
            if isinstance(exc, (duckdb.PermissionException, duckdb.ParserException, duckdb.BinderException)):
                raise
            if COLD_TRIPWIRE in str(exc):  # the query needs partitions only the unreachable cold tier holds
                raise ColdTierUnreachable(str(exc).split(COLD_TRIPWIRE, 1)[1].strip()) from None
            damaged = [d for name in named for d in quick_check(self.lake, dataset_spec(name),
                                                                self.lake.locate(name, cold_outages=[]))]
            if not damaged:
                raise
            first = exc
        if skip_damaged:
            warn_skipped(damaged)
            trips: list[Damage] = []
        elif all(self.can_trip(d) for d in damaged):
            trips = damaged
        else:
            raise PartitionDamaged(damaged, str(first)) from first
        try:
            result = self._run_sql(named, query, params, exclude=damaged, tripwires=trips, max_rows=max_rows,
                                   timeout=timeout)
        except duckdb.Error as exc:  # a tripwire, or a corrupted warm block shared with a sound partition
            raise PartitionDamaged(damaged, str(first)) from exc
        if trips:
            warn_skipped(damaged, needed=False)
        return result

    def _run_sql(self, named: list[str], query: str, params: Sequence | None, exclude: Iterable[Damage] = (),
                 tripwires: Iterable[Damage] = (), max_rows: int | None = None,
                 timeout: float | None = None) -> pl.DataFrame:
        outages: list[ColdOutage] = []
        with self.duckdb(named, exclude=exclude, tripwires=tripwires, cold_outages=outages) as con:
            timer = threading.Timer(timeout, con.interrupt) if timeout else None
            try:
                if timer:
                    timer.start()
                result = con.execute(query, params or [])
                if max_rows is None:
                    frame = result.pl()
                else:
                    reader = result.to_arrow_reader(min(max_rows + 1, 1_000_000))
                    batches, rows = [], 0
                    for batch in reader:
                        batches.append(batch)
                        rows += batch.num_rows
                        if rows > max_rows:
                            break
                    frame = pl.from_arrow(pa.Table.from_batches(batches, schema=reader.schema))
                warn_cold_outages(outages)  # answered: it needed no partition only cold holds
                return frame
            except duckdb.InterruptException:
                raise QueryTimeout(f"query stopped after its time limit of {timeout:g} s") from None
            except duckdb.CatalogException as exc:
                empty = [d for d in named if not con.execute(
                    "SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = ?", [d]).fetchone()[0]]
                raise LakeValidationError(
                    f"{with_dataset_hint(str(exc))}\nThe lake's datasets: {', '.join(sorted(DATASETS))}"
                    + (f"\nNo partitions stored yet for: {', '.join(empty)}" if empty else "")
                ) from None
            finally:
                if timer:
                    timer.cancel()


#: Marks the error a cold tripwire raises, so ``sql`` can tell it from any other DuckDB error.
COLD_TRIPWIRE = "[lake: cold tier unreachable] "


def warn_cold_outages(outages: Iterable[ColdOutage]) -> None:
    for outage in outages:
        warnings.warn(outage.warning(), ColdTierUnreachableWarning, stacklevel=3)


def _by_symbol(outage: ColdOutage) -> list[ColdOutage]:
    """One outage per symbol of its needed partitions (each becomes a tripwire its symbol filter prunes)."""
    groups: dict[str | None, list] = {}
    for p in outage.needed:
        groups.setdefault(dict(p).get("symbol"), []).append(p)
    return [replace(outage, needed=ps) for ps in groups.values()]


def partition_key_sql(spec: DatasetSpec) -> str:
    """SQL expression giving a row's partition key, e.g. ``EURUSD/2019-02-04`` for (symbol, date)."""
    parts = [
        f"strftime(CAST(\"{spec.time_column}\" AS DATE), '%Y-%m-%d')" if f == "date" else f'CAST("{f}" AS VARCHAR)'
        for f in spec.partition_by
    ]
    return "(" + " || '/' || ".join(parts) + ")"


def _segments(located: list[Located]) -> list[tuple[tuple[Tier, str | None], list[Located]]]:
    """Runs of consecutive partitions held by one source: a tier, or one cold month file (symbol, month)."""
    out: list[tuple[tuple, list[Located]]] = []
    for loc in located:
        key = (loc.tier, loc.month, dict(loc.partition)["symbol"] if loc.month else None)
        if out and out[-1][0] == key:
            out[-1][1].append(loc)
        else:
            out.append((key, [loc]))
    return [((tier, month), locs) for (tier, month, _symbol), locs in out]


def _day_runs(days: Iterable[str]) -> list[tuple[datetime, datetime]]:
    """Contiguous runs of UTC days as [start, end) datetimes."""
    runs: list[list[date]] = []
    for d in sorted({date.fromisoformat(x) for x in days}):
        if runs and d == runs[-1][1] + timedelta(days=1):
            runs[-1][1] = d
        else:
            runs.append([d, d])
    return [(time_bound(a, end=False), time_bound(b, end=True)) for a, b in runs]


def days_filter(time_column: str, days: Iterable[str]) -> pl.Expr:
    """Rows whose time falls on one of ``days`` (ranges, so Parquet statistics prune row groups)."""
    col = pl.col(time_column)
    expr = None
    for lo, hi in _day_runs(days):
        term = (col >= lo) & (col < hi)
        expr = term if expr is None else expr | term
    return expr if expr is not None else pl.lit(False)


def days_where_sql(time_column: str, days: Iterable[str]) -> str:
    terms = [f"(\"{time_column}\" >= TIMESTAMPTZ '{lo.isoformat()}' AND \"{time_column}\" < TIMESTAMPTZ '{hi.isoformat()}')"
             for lo, hi in _day_runs(days)]
    return "(" + " OR ".join(terms) + ")" if terms else "FALSE"


def partition_key_value(partition) -> str:
    return "/".join(v for _, v in partition)


def _sql_str(value: str) -> str:
    """Quote a value of our own (validated paths and partition keys) as a SQL string body."""
    return value.replace("'", "''")

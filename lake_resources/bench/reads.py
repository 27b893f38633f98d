"""Read-path overheads: ``LakeClient.read`` against a raw polars scan of the same files, and
``lake sql`` (``LakeClient.sql``: the function behind the command) against DuckDB directly on the
same files. Both sides return the same rows, checked in the run; both include their own set-up
(the client's partition lookup and views; the baseline's ``duckdb.connect``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from lake_resources.bench.core import Figure, Scaling, log, median_times, overhead
from lake_resources.bench.workspace import Workspace
from lake_resources.client import LakeClient

IDS = ("client_day", "client_hour_in_month", "sql_month")
_TS = pl.Datetime("ns", "UTC")


def sql_aggregate(source: str) -> str:
    """One symbol's ticks over ``[?, ?)`` summed up; ``source`` is a view or a ``read_parquet``.

    No per-day bucketing: ``CAST(ts AS DATE)`` on a TIMESTAMPTZ goes through ICU time zones and
    would cost both sides far more than the lake's overhead that this figure is about.
    """
    return (
        "SELECT count(*) AS ticks, min(bid) AS low_bid, max(ask) AS high_ask, avg(spread) AS mean_spread, "
        f"sum(bid_volume::DOUBLE) AS bid_volume FROM {source} WHERE symbol = ? AND ts >= ? AND ts < ?"
    )


def duckdb_direct(files: list[str], params: list) -> pl.DataFrame:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        listing = ", ".join(f"'{f}'" for f in files)
        return con.execute(sql_aggregate(f"read_parquet([{listing}])"), params).pl()
    finally:
        con.close()


def _utc(day) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def run(ws: Workspace, wanted: set[str]) -> list[Figure]:
    if not wanted & set(IDS):
        return []
    cfg = ws.config
    client = LakeClient(lake=ws.lake)
    symbol = ws.symbol
    figures: list[Figure] = []

    def compare_reads(t0: datetime, t1: datetime, files: list[str], what: str) -> dict[str, float]:
        """The client reading ``[t0, t1)`` of the symbol vs polars scanning ``files`` with that filter."""
        def ours() -> pl.DataFrame:
            return client.read("ticks", symbols=symbol, start=t0, end=t1)

        def raw() -> pl.DataFrame:
            return pl.scan_parquet(files).filter((pl.col("ts") >= t0) & (pl.col("ts") < t1)).collect()

        if not ours().equals(raw()):
            raise AssertionError(f"LakeClient.read and a polars scan of {files} disagree on [{t0}, {t1})")
        log(f"LakeClient.read, {what}: {cfg.fast_repeats} rounds")
        return median_times({"ours": ours, "raw": raw}, cfg.fast_repeats, warmup=cfg.warmup, budget=cfg.budget_seconds)

    if "client_day" in wanted:
        day = ws.days[0]
        t = compare_reads(_utc(day), _utc(day) + timedelta(days=1), ws.tick_files([day]), "1 symbol-day")
        fig = overhead("client_day", f"`LakeClient.read`, 1 symbol-day ({ws.ticks(day).height:,} ticks)",
                       "polars `scan_parquet` of the same file", t["ours"], t["raw"], target=1.2)
        if cfg.scaling:
            fig.scaling = _read_scaling(ws, client)
        figures.append(fig)

    if "client_hour_in_month" in wanted:
        mid = ws.trading_days[len(ws.trading_days) // 2]
        t0 = _utc(mid) + timedelta(hours=13)  # the London/New York overlap: the busiest hour
        t = compare_reads(t0, t0 + timedelta(hours=1), ws.tick_files([mid]), f"1 hour of {len(ws.days)} day-partitions")
        figures.append(overhead(
            "client_hour_in_month", f"`LakeClient.read`, 1-hour window in {len(ws.days)} day-partitions",
            "polars `scan_parquet` + filter of the same file", t["ours"], t["raw"], target=1.2,
        ))

    if "sql_month" in wanted:
        t0, t1 = _utc(ws.days[0]), _utc(ws.days[-1]) + timedelta(days=1)
        files = ws.tick_files(ws.days)
        query = sql_aggregate("ticks")

        def ours(end: datetime = t1) -> pl.DataFrame:
            return client.sql(query, [symbol, t0, end])

        def direct() -> pl.DataFrame:
            return duckdb_direct(files, [symbol, t0, t1])

        # Sums and means are taken in parallel, in no fixed order: equal up to float rounding.
        assert_frame_equal(ours(), direct(), check_exact=False, rel_tol=1e-9)
        log(f"lake sql, aggregate over {len(ws.days)} day-partitions: {cfg.fast_repeats} rounds")
        t = median_times({"ours": ours, "direct": direct}, cfg.fast_repeats, warmup=cfg.warmup,
                         budget=cfg.budget_seconds)
        n = ws.tick_count(ws.days)
        fig = overhead("sql_month", f"`lake sql` aggregate over {len(ws.days)} day-partitions ({n:,} ticks)",
                       "DuckDB directly on the same files", t["ours"], t["direct"], target=1.2)
        if cfg.scaling:
            log(f"lake sql scaling: 1 vs {len(ws.days)} days")
            ts = median_times({"one": lambda: ours(t0 + timedelta(days=1)), "all": ours}, cfg.fast_repeats, warmup=cfg.warmup,
                              budget=cfg.budget_seconds)
            n1 = ws.ticks(ws.days[0]).height
            fig.scaling = Scaling("ns/tick", ts["one"] / n1 * 1e9, ts["all"] / n * 1e9, cfg.days, n1, n)
        figures.append(fig)
    return figures


def _read_scaling(ws: Workspace, client: LakeClient) -> Scaling:
    first, last = ws.days[0], ws.days[-1]
    log(f"LakeClient.read scaling: 1 vs {len(ws.days)} days")
    t = median_times(
        {"one": lambda: client.read("ticks", symbols=ws.symbol, start=first, end=first),
         "all": lambda: client.read("ticks", symbols=ws.symbol, start=first, end=last)},
        ws.config.repeats, warmup=ws.config.warmup, budget=ws.config.budget_seconds,
    )
    n1, nn = ws.ticks(first).height, ws.tick_count(ws.days)
    return Scaling("ns/tick", t["one"] / n1 * 1e9, t["all"] / nn * 1e9, ws.config.days, n1, nn)

"""Ingest: vendor payloads enter the lake as raw assets, then become canonical ticks."""


from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone

import dagster as dg
import polars as pl

from lake_assets.metadata import OWNERS, dataset_description, dataset_kinds, dataset_metadata
from lake_assets.partitions import date_symbol_partitions, split_key
from lake_resources import bi5
from lake_resources.calendar import expected_hours
from lake_resources.instruments import instrument
from lake_resources.resources import ALLOW_MISSING_KEY, DukascopyResource, LakeResource, PartitionInputs, PartitionStream
from lake_resources.transforms.ticks import normalize_ticks, split_bad_ticks

RAW_HOURS_SCHEMA = {
    "ts": pl.Datetime("ns", "UTC"), "symbol": pl.String, "hour": pl.Int8, "status": pl.String,
    "bytes": pl.Int64, "sha256": pl.String, "source": pl.String,
}
QUARANTINE_SCHEMA = {
    "ts": pl.Datetime("ns", "UTC"), "stage": pl.String, "symbol": pl.String, "source": pl.String,
    "record": pl.Int64, "reason": pl.String, "detail": pl.String,
}


def raw_filename(hour: int) -> str:
    return f"{hour:02d}h_ticks.bi5"


def quarantine_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA)


@dg.asset(
    partitions_def=date_symbol_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingest",
    metadata=dataset_metadata("raw_dukascopy"),
    kinds=dataset_kinds("raw_dukascopy") | {"dukascopy"},
    owners=OWNERS,
    code_version="1",
    description=dataset_description("raw_dukascopy"),
)
def raw_dukascopy(context: dg.AssetExecutionContext, dukascopy: DukascopyResource, lake: LakeResource) -> PartitionStream:
    """Fetch the 24 hourly BI5 files of each symbol-day and keep their bytes in the raw zone."""
    store = lake.lake()
    keys = context.partition_keys
    counts: dict[str, int] = {}

    def produce():
        with dukascopy.source() as source:
            for i, key in enumerate(keys, 1):
                frame = fetch_raw_day(context, source, store, key, f"[{i}/{len(keys)}] ")
                for status, n in frame["status"].value_counts().iter_rows():
                    counts[f"hours_{status}"] = counts.get(f"hours_{status}", 0) + n
                yield key, frame

    return PartitionStream(produce(), summary=lambda: dict(counts))


def fetch_raw_day(context, source, store, key: str, progress: str = "") -> pl.DataFrame:
    """Fetch one symbol-day from the source into the raw zone; returns the per-hour status table."""
    day, symbol = split_key(key)
    if instrument(symbol).source != "dukascopy":
        context.log.info(f"{progress}{symbol} has no Dukascopy feed (vendor symbol): nothing to fetch for {day}")
        return pl.DataFrame(schema=RAW_HOURS_SCHEMA)
    rows = []
    for f in source.fetch_day(symbol, day):
        if f.status == "present":
            store.put_raw("dukascopy", symbol, day, raw_filename(f.hour.hour), f.payload)
        rows.append({"ts": f.hour, "symbol": symbol, "hour": f.hour.hour, "status": f.status,
                     "bytes": len(f.payload), "sha256": f.sha256, "source": f.source})
    frame = pl.DataFrame(rows, schema=RAW_HOURS_SCHEMA)
    expected = set(expected_hours(symbol, date.fromisoformat(day)))
    missing_open = sorted(expected & {r["hour"] for r in rows if r["status"] == "missing"})
    if expected and len(missing_open) == len(expected):
        # A wrong mirror URL answers 404 for everything, which looks exactly like "no data".
        context.log.warning(f"{symbol} {day}: every trading hour is missing at {source.base}: is the source right?")
    context.log.info(
        f"{progress}{symbol} {day}: "
        + ", ".join(f"{n} {s}" for s, n in sorted(frame["status"].value_counts().iter_rows()))
        + f" from {source.base}"
    )
    return frame


def _read_raw_hours(store, symbol: str, day: str, hours: pl.DataFrame) -> tuple[list[bytes | None], list[dict]]:
    """The day's 24 payloads from the raw zone (None where the hour had no file)."""
    present = [int(h) for h in hours.filter(pl.col("status") == "present")["hour"]]
    payloads: list[bytes | None] = [None] * 24
    problems = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for h, data in zip(present, pool.map(lambda h: store.get_raw("dukascopy", symbol, day, raw_filename(h)), present)):
            if data is None:
                problems.append({"hour": h, "reason": "raw file listed as present is missing from the raw zone"})
            payloads[h] = data
    return payloads, problems


@dg.asset(
    partitions_def=date_symbol_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingest",
    metadata=dataset_metadata("ticks"),
    kinds=dataset_kinds("ticks"),
    owners=OWNERS,
    code_version="1",
    description=dataset_description("ticks"),
    ins={"raw_dukascopy": dg.AssetIn(metadata={ALLOW_MISSING_KEY: True})},
)
def ticks(
    context: dg.AssetExecutionContext, raw_dukascopy: PartitionInputs, lake: LakeResource, dukascopy: DukascopyResource
) -> PartitionStream:
    """Decode the raw BI5 hours into normalized ticks; bad hours and bad ticks go to quarantine.

    A symbol-day not yet in the raw zone is fetched through the source first (read-through), so
    ``ticks`` alone can be materialized on a fresh lake; that fetch is recorded as a materialization
    of ``raw_dukascopy``.
    """
    store = lake.lake()
    totals = {"quarantined_ticks": 0, "quarantined_hours": 0}

    def produce():
        source = None
        for i, key in enumerate(raw_dukascopy.keys, 1):
            day, symbol = split_key(key)
            hours = raw_dukascopy.get(key)
            if hours is None:
                source = source or dukascopy.source()
                hours = fetch_raw_day(context, source, store, key, "read-through: ")
                info = store.write("raw_dukascopy", (("symbol", symbol), ("date", day)), hours)
                context.log_event(dg.AssetMaterialization(
                    asset_key="raw_dukascopy", partition=key,
                    metadata={"rows": info.rows, "sha256": info.sha256, "fetched_by": "ticks (read-through)"},
                ))
            payloads, missing = _read_raw_hours(store, symbol, day, hours)
            names = [store.raw_relpath("dukascopy", symbol, day, raw_filename(h)) for h in range(24)]
            decoded, problems = bi5.decode_day_ticks_checked(
                payloads, date.fromisoformat(day), instrument(symbol).decimal_factor, names=names
            )
            good, bad = split_bad_ticks(normalize_ticks(decoded, symbol), day=date.fromisoformat(day))
            start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
            rows = [
                {"ts": start.replace(hour=m["hour"]), "stage": "ticks", "symbol": symbol, "source": names[m["hour"]],
                 "record": None, "reason": m["reason"], "detail": None}
                for m in missing
            ] + [
                {"ts": start.replace(hour=p.hour), "stage": "ticks", "symbol": symbol, "source": p.name,
                 "record": None, "reason": p.message, "detail": None if p.rejected_records is None else f"{p.rejected_records} records"}
                for p in problems
            ]
            quarantine = quarantine_frame(rows)
            if bad.height:
                quarantine = pl.concat([quarantine, bad.select(
                    "ts", pl.lit("ticks").alias("stage"), "symbol", pl.lit("decoded ticks").alias("source"),
                    pl.lit(None, pl.Int64).alias("record"), "reason",
                    pl.format("bid={} ask={} bid_volume={} ask_volume={}", "bid", "ask", "bid_volume", "ask_volume").alias("detail"),
                )])
            store.write("quarantine", (("stage", "ticks"), ("symbol", symbol), ("date", day)), quarantine)
            totals["quarantined_ticks"] += bad.height
            totals["quarantined_hours"] += len(rows)
            if quarantine.height:
                context.log.warning(f"{symbol} {day}: quarantined {len(rows)} hour problem(s) and {bad.height} tick(s): "
                                    + "; ".join(quarantine["reason"].unique().to_list()[:5]))
            context.log.info(f"[{i}/{len(raw_dukascopy)}] {symbol} {day}: {good.height} ticks")
            yield key, good
        if source is not None:
            source.close()

    return PartitionStream(produce(), summary=lambda: dict(totals))

"""What the lake holds, as JSON: datasets, partitions and coverage (``/datasets`` and below)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import polars as pl

from lake_resources.catalog.datasets import TIER_PREFERENCE, dataset_spec, partition_path
from lake_resources.catalog.validation import LakeValidationError, parse_date
from lake_resources.client import LakeClient
from lake_resources.lifecycle import inventory
from lake_resources.serve.rows import time_bounds

MAX_COVERAGE_DAYS = 3660


def describe(client: LakeClient, name: str) -> dict:
    spec = dataset_spec(name)
    inv = inventory(client.lake, spec)
    tiers = {t.value: {"partitions": 0, "rows": 0} for t in TIER_PREFERENCE}
    for copies in inv.values():
        c = copies[0]  # the copy reads are served from (fastest tier first)
        tiers[c.tier.value]["partitions"] += 1
        tiers[c.tier.value]["rows"] += max(c.rows, 0)
    schema = None
    located = client.lake.locate(spec)
    if located:
        manifest = client.lake.manifest(spec, located[-1].partition, located[-1].tier) or {}
        schema = json.loads(manifest["schema"]) if manifest.get("schema") else None
    return {
        "name": spec.name, "home_tier": spec.tier.value, "partition_by": list(spec.partition_by),
        "time_column": spec.time_column, "description": spec.description, "schema": schema,
        "partitions": sum(t["partitions"] for t in tiers.values()), "rows": sum(t["rows"] for t in tiers.values()),
        "tiers": {k: v for k, v in tiers.items() if v["partitions"]},
    }


def partitions(client: LakeClient, name: str, symbols, start, end, tier) -> list[dict]:
    spec = dataset_spec(name)
    time_bounds(start, end)
    out = []
    for loc in client.partitions(spec.name, symbols=symbols, start=start, end=end, tier=tier):
        m = client.lake.manifest(spec, loc.partition, loc.tier) or {}
        out.append({"partition": partition_path(loc.partition), **dict(loc.partition), "tier": loc.tier.value,
                    "month": loc.month, "rows": m.get("rows"), "bytes": m.get("bytes"), "sha256": m.get("sha256"),
                    "min_ts": m.get("min_ts"), "max_ts": m.get("max_ts"), "written_at": m.get("written_at")})
    return out


def _day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def _utc(t: datetime) -> datetime:
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _hour_counts(client: LakeClient, spec, symbols, lo: date, hi: date) -> dict[datetime, int]:
    lf = client.read(spec.name, symbols=symbols, start=lo, end=hi, columns=[spec.time_column], lazy=True)
    counts = lf.group_by(pl.col(spec.time_column).dt.truncate("1h").alias("hour")).agg(pl.len().alias("n")).collect()
    return {_utc(h): n for h, n in counts.iter_rows()}


def _source_hours(client: LakeClient, symbol: str | None, lo: date, hi: date) -> dict[datetime, str]:
    """What the tick source said of each hour (``raw_dukascopy``: present, empty or missing), where recorded."""
    if not symbol or not client.partitions("raw_dukascopy", symbols=[symbol], start=lo, end=hi):
        return {}
    raw = client.read("raw_dukascopy", symbols=[symbol], start=lo, end=hi, columns=["ts", "status"])
    return {_utc(t): status for t, status in raw.iter_rows()}


def coverage(client: LakeClient, name: str, symbol: str | None, start: str | None, end: str | None,
             granularity: str) -> dict:
    """Per day (and per hour) of [start, end]: present (rows), empty (stored, no rows) or missing (not
    stored), and the missing intervals merged (the question ``get_missing_intervals_for_request`` asks).

    Hours of ``ticks``: an hour without ticks in a stored day is "missing" when the source had no file for
    it and "empty" when the source's file was empty (market closed), as ``raw_dukascopy`` recorded; without
    that record it is "empty"."""
    spec = dataset_spec(name)
    if "date" not in spec.partition_by:
        raise LakeValidationError(f"coverage needs a dataset partitioned by date; {spec.name} is partitioned by "
                                  f"{', '.join(spec.partition_by) or 'nothing'}")
    if "symbol" in spec.partition_by and not symbol:
        raise LakeValidationError(f"coverage of {spec.name} needs symbol=")
    symbols = [symbol] if symbol else None
    time_bounds(start, end)
    found = {dict(l.partition)["date"]: l for l in client.partitions(spec.name, symbols=symbols, start=start, end=end)}
    if not (start and end) and not found:
        raise LakeValidationError(f"{spec.name} holds no partitions for {symbol}: give start= and end=")
    lo = parse_date(start[:10]) if start else date.fromisoformat(min(found))
    hi = parse_date(end[:10]) if end else date.fromisoformat(max(found))
    if (hi - lo).days + 1 > MAX_COVERAGE_DAYS:
        raise LakeValidationError(f"coverage spans more than {MAX_COVERAGE_DAYS} days; narrow start/end")
    hourly = granularity == "hour" and spec.time_column is not None
    counts = _hour_counts(client, spec, symbols, lo, hi) if hourly and found else {}
    said = _source_hours(client, symbol, lo, hi) if hourly and found and spec.name == "ticks" else {}
    days, hours, units = [], [], []  # units: (start, end, status) at the finest granularity asked
    d = lo
    while d <= hi:
        loc = found.get(d.isoformat())
        rows = None
        if loc is not None:
            rows = (client.lake.manifest(spec, loc.partition, loc.tier) or {}).get("rows")
        status = "missing" if loc is None else ("empty" if rows == 0 else "present")
        days.append({"date": d.isoformat(), "status": status, "rows": rows, "tier": loc.tier.value if loc else None})
        if not hourly:
            units.append((_day_start(d), _day_start(d + timedelta(days=1)), status))
        else:
            for h in range(24):
                t = _day_start(d) + timedelta(hours=h)
                n = counts.get(t, 0)
                if loc is None:
                    hour_status = "missing"
                elif n:
                    hour_status = "present"
                else:
                    hour_status = "missing" if said.get(t) == "missing" else "empty"
                hours.append({"start": t.isoformat(), "status": hour_status, "rows": None if loc is None else n,
                              **({"source": said[t]} if t in said else {})})
                units.append((t, t + timedelta(hours=1), hour_status))
        d += timedelta(days=1)
    missing: list[list[datetime]] = []
    for a, b, status in units:
        if status != "missing":
            continue
        if missing and missing[-1][1] == a:
            missing[-1][1] = b
        else:
            missing.append([a, b])
    out = {"dataset": spec.name, "symbol": symbol, "start": lo.isoformat(), "end": hi.isoformat(), "days": days,
           "missing_intervals": [{"start": a.isoformat(), "end": b.isoformat()} for a, b in missing]}
    if hourly:
        out["hours"] = hours
    return out

"""This lake's record of what its S3 cold tier holds, so a read can still be planned while S3 is down.

``{LAKE_HOME}/cold_record.json`` mirrors the cold tier's layout per dataset: the daily partitions, the
days each compacted month file serves, and when each symbol (or the whole dataset) was last listed.
It is kept by every cold write, move, compaction and delete made through ``Lake`` (before a write, after
a delete, so it can only over-claim) and replaced by every successful cold listing. It is never
trusted over a live listing: ``Lake.locate`` reads it only when the listing fails because the S3
endpoint is unreachable. It knows nothing another host did to the shared bucket since the last listing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

RECORD_FILE = "cold_record.json"
#: A listing that finds what the record already says rewrites it at most this often (the age of the
#: record is exact to within this).
REFRESH_SECONDS = 60.0


def unreachable_reason(exc: BaseException) -> str | None:
    """Why the S3 endpoint could not be reached (connection refused, a timeout), or None for any other
    failure (access denied, a missing bucket, a damaged file: those are not an outage)."""
    seen: set[int] = set()
    chain = []
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(e, PermissionError) for e in chain):
        return None
    hit = next((e for e in chain if isinstance(e, ConnectionError) or "Connect" in type(e).__name__
                or "Timeout" in type(e).__name__), None)
    if hit is None:
        return None
    text = " ".join(str(hit).split()) or type(hit).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def describe_age(listed_at: str | None, now: float | None = None) -> str:
    if listed_at is None:
        return "never listed from this lake home: only the cold writes made from it are known"
    seconds = max(0.0, (now or time.time()) - datetime.fromisoformat(listed_at).timestamp())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"last listed {seconds / size:.1f} {unit} ago ({listed_at})"
    return f"last listed {seconds:.0f} s ago ({listed_at})"


@dataclass
class ColdOutage:
    """The cold tier could not be listed for one read of ``dataset``: ``needed`` are the partitions the
    record says only the cold tier holds within the read's symbols and dates."""

    dataset: str
    where: str  # the cold tier's label (names the bucket and the endpoint)
    reason: str
    listed_at: str | None
    needed: list = field(default_factory=list)

    def error(self) -> str:
        labels = [", ".join(f"{k}={v}" for k, v in p) for p in self.needed]
        more = f" and {len(labels) - 5} more" if len(labels) > 5 else ""
        return (f"{self.where} unreachable ({self.reason}): {self.dataset} needs {len(labels)} partition(s) held "
                f"in the cold tier: {'; '.join(labels[:5])}{more}")

    def warning(self) -> str:
        held = (f"says only cold holds {len(self.needed)} {self.dataset} partition(s), which this query did not need"
                if self.needed else f"holds none of the {self.dataset} partitions asked for")
        return (f"{self.where} unreachable ({self.reason}); answered from hot and warm only: this lake's record of "
                f"its cold tier ({describe_age(self.listed_at)}) {held}. A partition another host moved to cold "
                "since then would be missing.")


def _key(partition) -> str:
    return "/".join(v for _, v in partition)


class ColdRecord:
    """``{home}/cold_record.json`` (see the module docstring); updates hold ``{home}/locks/cold_record.lock``."""

    def __init__(self, home: Path):
        self.path = Path(home) / RECORD_FILE
        self._lock_path = Path(home) / "locks" / "cold_record.lock"
        self._cached: tuple[tuple, dict] | None = None

    # reading -------------------------------------------------------------------------------
    def load(self) -> dict:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {"version": 1, "datasets": {}}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._cached is None or self._cached[0] != stamp:
            try:
                doc = json.loads(self.path.read_bytes())
            except ValueError:  # a damaged record knows nothing: the next listing rebuilds it
                doc = {"version": 1, "datasets": {}}
            self._cached = (stamp, doc)
        return self._cached[1]

    def held(self, spec) -> list:
        """Every partition of ``spec`` the record says the cold tier holds (daily or in a month file)."""
        ds = self.load()["datasets"].get(spec.name, {})
        keys = set(ds.get("daily", []))
        for sym_month, days in ds.get("months", {}).items():
            keys.update(f"{sym_month.split('/')[0]}/{d}" for d in days)
        return [spec.partition(**dict(zip(spec.partition_by, k.split("/")))) for k in sorted(keys)
                if len(k.split("/")) == len(spec.partition_by)] if spec.partition_by else ([()] if keys else [])

    def listed_at(self, spec, symbols: Iterable[str] | None) -> str | None:
        """When the oldest-listed of ``symbols`` (None: all of the dataset) was last listed."""
        listed = self.load()["datasets"].get(spec.name, {}).get("listed", {})
        whole = listed.get("*")
        if symbols is None or spec.partition_by[:1] != ("symbol",):
            return whole
        stamps = [max(filter(None, (whole, listed.get(s))), default=None) for s in symbols]
        return None if not stamps or None in stamps else min(stamps)

    def columns(self, spec) -> list[str]:
        return list(self.load()["datasets"].get(spec.name, {}).get("columns", []))

    # updates ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict]:
        """The record, fresh from disk under the lock; written back (atomically) if the body changed it."""
        from lake_resources.storage import write_atomic

        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._cached = None
            doc = json.loads(json.dumps(self.load()))
            before = json.dumps(doc, sort_keys=True)
            yield doc
            if json.dumps(doc, sort_keys=True) != before:
                write_atomic(self.path, json.dumps(doc, indent=1, sort_keys=True).encode())

    def _dataset(self, doc: dict, spec) -> dict:
        return doc["datasets"].setdefault(spec.name, {"listed": {}, "daily": [], "months": {}, "columns": []})

    def wrote_daily(self, spec, partition, columns: Iterable[str]) -> None:
        with self._editing() as doc:
            ds = self._dataset(doc, spec)
            ds["daily"] = sorted(set(ds["daily"]) | {_key(partition)})
            ds["columns"] = list(columns) or ds["columns"]

    def deleted_daily(self, spec, partition) -> None:
        with self._editing() as doc:
            ds = self._dataset(doc, spec)
            ds["daily"] = sorted(set(ds["daily"]) - {_key(partition)})

    def wrote_month(self, spec, symbol: str, month: str, days: Iterable[str], keep: bool = False) -> None:
        """The month file of ``symbol``/``month`` serves ``days`` (``keep``: besides those it served)."""
        with self._editing() as doc:
            months = self._dataset(doc, spec)["months"]
            old = months.get(f"{symbol}/{month}", []) if keep else []
            months[f"{symbol}/{month}"] = sorted(set(days) | set(old))

    def deleted_month(self, spec, symbol: str, month: str) -> None:
        with self._editing() as doc:
            self._dataset(doc, spec)["months"].pop(f"{symbol}/{month}", None)

    def listed(self, spec, symbols: Iterable[str] | None, daily: Iterable, months: Iterable) -> None:
        """A successful listing of ``symbols`` (None: the whole dataset) found ``daily`` partitions and
        ``months`` (``MonthFile``s): the record of that scope becomes exactly this."""
        whole = symbols is None or spec.partition_by[:1] != ("symbol",)
        scope = None if whole else set(symbols)
        found_daily = {_key(p) for p in daily}
        found_months = {f"{m.symbol}/{m.month}": sorted(m.dates) for m in months}
        now = time.time()

        def merged(ds: dict) -> tuple[list, dict]:
            keep = (lambda key: False) if scope is None else (lambda key: key.split("/")[0] not in scope)
            new_daily = sorted({k for k in ds.get("daily", []) if keep(k)} | found_daily)
            new_months = {k: v for k, v in ds.get("months", {}).items() if keep(k)} | found_months
            return new_daily, new_months

        def fresh(ds: dict) -> bool:
            listed = ds.get("listed", {})
            names = ["*"] if scope is None else list(scope)
            stamps = [max(filter(None, (listed.get("*"), listed.get(n))), default=None) for n in names]
            return all(s and now - datetime.fromisoformat(s).timestamp() < REFRESH_SECONDS for s in stamps)

        current = self.load()["datasets"].get(spec.name)
        if current is not None and fresh(current) and merged(current) == (current["daily"], current["months"]):
            return  # the read path's common case: no lock, no write
        stamp = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
        with self._editing() as doc:
            ds = self._dataset(doc, spec)
            ds["daily"], ds["months"] = merged(ds)
            ds["listed"] = {"*": stamp} if scope is None else ds["listed"] | {s: stamp for s in scope}

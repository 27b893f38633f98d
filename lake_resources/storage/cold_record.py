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

from lake_resources.storage.atomic import write_atomic

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


def _split(spec, partition) -> tuple[str, str]:
    """(group, rest) of a partition key: grouped by symbol where the layout starts with it, so a
    listing of some symbols touches only their part of the record."""
    values = [v for _, v in partition]
    if spec.partition_by[:1] == ("symbol",):
        return values[0], "/".join(values[1:])
    return "*", "/".join(values)


def _grouped(spec, daily: Iterable, months: Iterable) -> dict[str, dict]:
    groups: dict[str, dict] = {}
    for p in daily:
        g, rest = _split(spec, p)
        groups.setdefault(g, {"daily": [], "months": {}})["daily"].append(rest)
    for m in months:
        groups.setdefault(m.symbol, {"daily": [], "months": {}})["months"][m.month] = sorted(m.dates)
    for grp in groups.values():
        grp["daily"].sort()
    return groups


class ColdRecord:
    """``{home}/cold_record.json`` (see the module docstring); updates hold ``{home}/locks/cold_record.lock``.

    Per dataset: ``groups`` (per symbol: its daily partitions and the days of each month file),
    ``listed`` (per symbol, or ``*`` for the whole dataset: when last listed) and ``columns``."""

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
        keys: set[str] = set()
        for g, grp in self.load()["datasets"].get(spec.name, {}).get("groups", {}).items():
            head = "" if g == "*" else f"{g}/"
            keys.update(head + rest for rest in grp["daily"])
            keys.update(head + day for days in grp["months"].values() for day in days)
        out = []
        for key in sorted(keys):
            values = key.split("/") if key else []
            if len(values) == len(spec.partition_by):
                out.append(spec.partition(**dict(zip(spec.partition_by, values))))
        return out

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
    def _editing(self, spec) -> Iterator[dict]:
        """The dataset's entry, fresh from disk under the lock; the record is written back atomically."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._cached = None
            doc = self.load()
            self._cached = None  # the body edits it in place
            ds = doc["datasets"].setdefault(spec.name, {"listed": {}, "groups": {}, "columns": []})
            yield ds
            ds["groups"] = {g: grp for g, grp in ds["groups"].items() if grp["daily"] or grp["months"]}
            write_atomic(self.path, json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())

    @staticmethod
    def _group(ds: dict, name: str) -> dict:
        return ds["groups"].setdefault(name, {"daily": [], "months": {}})

    def wrote_daily(self, spec, partition, columns: Iterable[str]) -> None:
        g, rest = _split(spec, partition)
        with self._editing(spec) as ds:
            grp = self._group(ds, g)
            grp["daily"] = sorted(set(grp["daily"]) | {rest})
            ds["columns"] = list(columns) or ds["columns"]

    def deleted_daily(self, spec, partition) -> None:
        g, rest = _split(spec, partition)
        with self._editing(spec) as ds:
            grp = self._group(ds, g)
            grp["daily"] = [r for r in grp["daily"] if r != rest]

    def wrote_month(self, spec, symbol: str, month: str, days: Iterable[str], keep: bool = False) -> None:
        """The month file of ``symbol``/``month`` serves ``days`` (``keep``: besides those it served)."""
        with self._editing(spec) as ds:
            months = self._group(ds, symbol)["months"]
            months[month] = sorted(set(days) | set(months.get(month, []) if keep else []))

    def deleted_month(self, spec, symbol: str, month: str) -> None:
        with self._editing(spec) as ds:
            self._group(ds, symbol)["months"].pop(month, None)

    def listed(self, spec, symbols: Iterable[str] | None, daily: Iterable, months: Iterable) -> None:
        """A successful listing of ``symbols`` (None: the whole dataset) found ``daily`` partitions and
        ``months`` (``MonthFile``s): the record of that scope becomes exactly this."""
        whole = symbols is None or spec.partition_by[:1] != ("symbol",)
        scope = ["*"] if whole else sorted(set(symbols))
        found = _grouped(spec, daily, months)
        now = time.time()
        current = self.load()["datasets"].get(spec.name)
        if current is not None:
            groups, listed = current.get("groups", {}), current.get("listed", {})
            same = groups == found if whole else all(groups.get(s) == found.get(s) for s in scope)
            stamps = [max(filter(None, (listed.get("*"), listed.get(s))), default=None) for s in scope]
            if same and all(t and now - datetime.fromisoformat(t).timestamp() < REFRESH_SECONDS for t in stamps):
                return  # the read path's common case: no lock, no write
        stamp = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
        with self._editing(spec) as ds:
            if whole:
                ds["groups"], ds["listed"] = found, {"*": stamp}
            else:
                for s in scope:
                    ds["groups"][s] = found.get(s, {"daily": [], "months": {}})
                ds["listed"] |= {s: stamp for s in scope}

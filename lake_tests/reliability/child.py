"""A child process for fault scenarios: it writes a partition (or materializes the fixture day) and can
SIGKILL itself at a precise step, through a hook patched into this process only.

Run as ``python -m lake_tests.reliability.child ACTION [options]``; the lake comes from the
environment (``LAKE_HOME``, ``LAKE_S3_*``, ``AWS_*``), as in production.

Kill points (``--kill TARGET[:FILE]:N:WHEN``; WHEN is ``before`` or ``after`` the N-th matching call,
1-based). Steps are named by the file they publish, not by their position, so the scenarios stay
meaningful whatever order the storage code writes its files in:

- ``replace:FILE``  ``os.replace`` onto a file named FILE (hot/local Parquet: the rename that publishes
  ``part-0.parquet`` or ``_manifest.json``)
- ``pipe:FILE``     ``S3FileSystem.pipe_file`` of an object named FILE (cold tier on S3: one PUT each)
- ``commit`` / ``insert`` / ``delete``  the DuckDB statement of the warm tier's write transaction
- ``checkpoint``  ``--kill checkpoint:MS:during``: after the warm write commits, checkpoint the WAL into
  the database file and die MS milliseconds into it (wherever DuckDB then is)
- ``sent``        ``--kill sent:BYTES:mid``: after BYTES bytes went out on any socket (mid-upload)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from datetime import date
from pathlib import Path

import polars as pl

DATAFEED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "dukascopy" / "datafeed"
FIXTURE_DAY = date(2019, 2, 4)
#: The "old" version of the fixture partition: the ticks of its first hours (a real, smaller version).
OLD_VERSION_HOURS = 6


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def fixture_ticks(version: str, symbol: str = "EURUSD", day: date = FIXTURE_DAY) -> pl.DataFrame:
    """The real EURUSD 2019-02-04 ticks ("new") or their first hours ("old"), dated ``day``."""
    from lake_resources.sources.dukascopy import bi5
    from lake_resources.transforms.ticks import normalize_ticks

    base = DATAFEED / "EURUSD/2019/01/04"
    hours = [(base / f"{h:02d}h_ticks.bi5").read_bytes() for h in range(24)]
    if version == "old":
        hours = hours[:OLD_VERSION_HOURS] + [None] * (24 - OLD_VERSION_HOURS)
    elif version != "new":
        raise ValueError(f"unknown version {version!r}")
    return normalize_ticks(bi5.decode_day_ticks(hours, day, 100000), symbol)


def install_kill(spec: str | None, lake=None) -> None:
    """Patch this process so it SIGKILLs itself at the named step (see the module docstring).

    ``pipe`` needs the ``lake``: s3fs binds its sync methods per instance, so the lake's own
    filesystem object is the one to patch."""
    if not spec:
        return
    parts = spec.split(":")
    target, when = parts[0], parts[-1]
    nth = int(parts[-2])
    name = parts[1] if len(parts) == 4 else None
    calls = {"n": 0}

    def wrap(fn, path_of=lambda args, kwargs: ""):
        def hooked(*args, **kwargs):
            if name is not None and os.path.basename(str(path_of(args, kwargs))) != name:
                return fn(*args, **kwargs)
            calls["n"] += 1
            hit = calls["n"] == nth
            if hit and when == "before":
                _die()
            out = fn(*args, **kwargs)
            if hit and when == "after":
                _die()
            return out
        return hooked

    if target == "replace":
        os.replace = wrap(os.replace, lambda args, kwargs: args[1])
    elif target == "pipe":
        fs = lake.cold.fs
        fs.pipe_file = wrap(fs.pipe_file, lambda args, kwargs: args[0])
    elif target in ("commit", "insert", "delete"):
        _hook_duckdb(target.upper(), wrap)
    elif target == "checkpoint":
        _hook_duckdb("COMMIT", lambda fn: _checkpoint_then_die(fn, nth))
    elif target == "sent":
        _hook_socket(nth)
    else:
        raise ValueError(f"unknown kill target {target!r}")


def _hook_duckdb(statement: str, wrap) -> None:
    """Proxy the warm tier's connections so one SQL statement kind can be intercepted."""
    import contextlib

    from lake_resources.storage import WarmTier

    original = WarmTier.connect

    class Proxy:
        def __init__(self, con):
            self._con = con
            self._hooked = wrap(lambda sql, *a: con.execute(sql, *a))

        def execute(self, sql, *args):
            if sql.lstrip().upper().startswith(statement):
                return self._hooked(sql, *args)
            return self._con.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._con, name)

    @contextlib.contextmanager
    def connect(self, read_only: bool = False):
        with original(self, read_only=read_only) as con:
            yield con if read_only else Proxy(con)

    WarmTier.connect = connect


def _checkpoint_then_die(execute, delay_ms: int):
    import threading
    import time

    def hooked(sql, *args):
        out = execute(sql, *args)
        threading.Timer(delay_ms / 1000, _die).start()
        execute("CHECKPOINT")
        time.sleep(60)  # the timer kills us, mid-checkpoint or just after it
        return out

    return hooked


def _hook_socket(limit: int) -> None:
    """Die once ``limit`` bytes have been sent on sockets: an upload cut off mid-body."""
    import socket

    sent = {"n": 0}
    real_send = socket.socket.send
    real_sendall = socket.socket.sendall

    def send(self, data, *args):
        if sent["n"] + len(data) > limit:
            n = real_send(self, bytes(data)[: max(1, limit - sent["n"])], *args)
            _die()
        n = real_send(self, data, *args)
        sent["n"] += n
        return n

    def sendall(self, data, *args):
        if sent["n"] + len(data) > limit:
            real_send(self, bytes(data)[: max(1, limit - sent["n"])], *args)
            _die()
        sent["n"] += len(data)
        return real_sendall(self, data, *args)

    socket.socket.send = send
    socket.socket.sendall = sendall


def cmd_write(args) -> None:
    from lake_resources.storage import Lake

    lake = Lake.from_env()
    lake.ensure_bucket()
    df = fixture_ticks(args.version, args.symbol, date.fromisoformat(args.date))
    install_kill(args.kill, lake)
    info = lake.write(args.dataset, (("symbol", args.symbol), ("date", args.date)), df, tier=args.tier)
    print(json.dumps({"rows": info.rows, "sha256": info.sha256}))


def cmd_write_many(args) -> None:
    """Several partitions of one dataset, one write each (concurrent small writers)."""
    from lake_resources.storage import Lake

    lake = Lake.from_env()
    df = fixture_ticks("old").head(args.rows)
    out = []
    for day in args.dates.split(","):
        shifted = df.with_columns(pl.col("ts") + pl.duration(days=(date.fromisoformat(day) - FIXTURE_DAY).days))
        info = lake.write(args.dataset, (("symbol", args.symbol), ("date", day)), shifted, tier=args.tier)
        out.append({"date": day, "rows": info.rows, "sha256": info.sha256})
    print(json.dumps(out))


def cmd_materialize(args) -> None:
    """``dg.materialize`` of assets for one partition key with resources from the environment."""
    import dagster as dg

    from lake_assets.definitions import defs
    from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource

    env = os.environ
    lake = LakeResource(
        home=env["LAKE_HOME"], s3_endpoint=env.get("LAKE_S3_ENDPOINT"),
        s3_bucket=env.get("LAKE_S3_BUCKET", "quant-lake"),
        aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID") if env.get("AWS_ACCESS_KEY_ID") else None,
        aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY") if env.get("AWS_SECRET_ACCESS_KEY") else None,
    )
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake),
                 "dukascopy": DukascopyResource(feed="datafeed", url=args.datafeed, lake=lake)}
    install_kill(args.kill)
    if args.barrier:  # start the runs at the same moment
        barrier = Path(args.barrier)
        while not barrier.exists():
            import time

            time.sleep(0.01)
    result = dg.materialize(list(defs.assets), selection=args.select.split(","), partition_key=args.partition,
                            resources=resources, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    errors = [e.message for e in result.all_events if e.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")]
    print(json.dumps({"success": result.success, "errors": errors}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="child")
    sub = parser.add_subparsers(dest="action", required=True)
    w = sub.add_parser("write")
    w.add_argument("--dataset", default="ticks")
    w.add_argument("--tier", default="hot")
    w.add_argument("--symbol", default="EURUSD")
    w.add_argument("--date", default=FIXTURE_DAY.isoformat())
    w.add_argument("--version", default="new")
    w.add_argument("--kill")
    w.set_defaults(fn=cmd_write)
    m = sub.add_parser("write-many")
    m.add_argument("--dataset", default="bars_1m")
    m.add_argument("--tier", default="warm")
    m.add_argument("--symbol", default="EURUSD")
    m.add_argument("--dates", required=True)
    m.add_argument("--rows", type=int, default=2000)
    m.set_defaults(fn=cmd_write_many)
    d = sub.add_parser("materialize")
    d.add_argument("--select", default="raw_dukascopy,ticks")
    d.add_argument("--partition", default="2019-02-04|EURUSD")
    d.add_argument("--datafeed", default=str(DATAFEED))
    d.add_argument("--barrier")
    d.add_argument("--kill")
    d.set_defaults(fn=cmd_materialize)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()

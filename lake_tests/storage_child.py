"""A child process for the storage-hygiene tests: it writes, migrates or uploads into the lake given by
its environment, and can stop itself (SIGSTOP) or die (SIGKILL) at a precise step, so the parent can
run another process against the same partition at exactly that moment.

``python -m lake_tests.storage_child ACTION [options]``:

- ``write [--version old|new] [--tier T] [--kill SPEC] [--stop-after-data]``: store the real fixture
  day's ticks (``old``: its first hours) as EURUSD 2019-02-04. ``--kill`` takes the reliability
  suite's kill specs (``lake_tests/reliability/child.py``); ``--stop-after-data`` stops the process
  right after the new data file was renamed into place, before the write finishes.
- ``migrate --to T [--stop-before-delete]``: ``lifecycle.migrate`` of ``ticks`` to tier T, stopping
  just before the move deletes its first copy (after it checked that copy's manifest).
- ``put-raw --bytes N [--kill SPEC]``: one raw-zone file of N random bytes (100 MiB and more go to S3
  as a multipart upload).

Lock waits are logged to stderr (``lake_resources.storage``), so the parent can see a process waiting.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

PARTITION = (("symbol", "EURUSD"), ("date", "2019-02-04"))


def _stop() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGSTOP)


def cmd_write(args) -> None:
    from lake_resources.storage import DATA_FILE, Lake
    from lake_tests.reliability.child import fixture_ticks, install_kill

    lake = Lake.from_env()
    df = fixture_ticks(args.version)
    install_kill(args.kill, lake)
    if args.stop_after_data:
        real_replace = os.replace

        def replace(src, dst, *a, **kw):
            real_replace(src, dst, *a, **kw)
            if os.path.basename(str(dst)) == DATA_FILE:
                _stop()

        os.replace = replace
    info = lake.write("ticks", PARTITION, df, tier=args.tier)
    print(json.dumps({"rows": info.rows, "sha256": info.sha256}))


def cmd_migrate(args) -> None:
    from lake_resources.lifecycle import migrate
    from lake_resources.storage import Lake

    lake = Lake.from_env()
    if args.stop_before_delete:
        real_delete = Lake.delete
        calls = {"n": 0}

        def delete(self, *a, **kw):
            calls["n"] += 1
            if calls["n"] == 1:
                _stop()
            return real_delete(self, *a, **kw)

        Lake.delete = delete
    report = migrate(lake, datasets=["ticks"], to=args.to)
    print(json.dumps(report.as_dict(), default=str))


def cmd_put_raw(args) -> None:
    from lake_resources.storage import Lake
    from lake_tests.reliability.child import install_kill

    lake = Lake.from_env()
    lake.ensure_bucket()
    data = os.urandom(args.bytes)
    install_kill(args.kill, lake)
    print(json.dumps({"uri": lake.put_raw("vendor", "EURUSD", "2019-02-04", "big-pull.json.zst", data)}))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="storage_child")
    sub = parser.add_subparsers(dest="action", required=True)
    w = sub.add_parser("write")
    w.add_argument("--version", default="new")
    w.add_argument("--tier", default="hot")
    w.add_argument("--kill")
    w.add_argument("--stop-after-data", action="store_true")
    w.set_defaults(fn=cmd_write)
    m = sub.add_parser("migrate")
    m.add_argument("--to", required=True)
    m.add_argument("--stop-before-delete", action="store_true")
    m.set_defaults(fn=cmd_migrate)
    r = sub.add_parser("put-raw")
    r.add_argument("--bytes", type=int, required=True)
    r.add_argument("--kill")
    r.set_defaults(fn=cmd_put_raw)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()

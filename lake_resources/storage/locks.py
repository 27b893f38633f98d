"""Per-partition locks shared by every process of this host that changes the lake (``PartitionLocks``,
flock through ``filelock``)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from lake_resources.catalog.datasets import DatasetSpec, Partition, partition_label, partition_path
from lake_resources.storage.layout import LakeStorageError

#: Partitions hash onto this many lock files under ``LAKE_HOME/locks`` (see ``PartitionLocks``).
PARTITION_LOCK_FILES = 1024
#: How long a writer or a move waits for another process holding the same partition.
PARTITION_LOCK_TIMEOUT_SECONDS = 900.0

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Partition locks
# --------------------------------------------------------------------------------------------
_held_locks = threading.local()


class PartitionLocks:
    """Per-partition locks shared by every process of this host that changes the lake: ``flock`` (through
    ``filelock``) on files under ``LAKE_HOME/locks``, which the kernel releases when a holder dies (even by SIGKILL).

    Replacing a partition (``Lake.write``/``Lake.delete``) and moving or compacting it (lifecycle)
    hold its lock, so neither deletes a copy the other has just written. Partitions hash onto
    ``PARTITION_LOCK_FILES`` files, so the directory stays small (two partitions sharing a file only
    wait for each other). Re-entrant within a thread; several partitions are taken in one global
    order, so two holders never deadlock."""

    def __init__(self, root: Path, timeout: float = PARTITION_LOCK_TIMEOUT_SECONDS):
        self.root = Path(root)
        self.timeout = timeout

    def path_of(self, spec: DatasetSpec, partition: Partition) -> Path:
        canonical = spec.partition(**dict(partition)) if spec.partition_by else ()
        key = f"{spec.name}/{partition_path(canonical)}".encode()
        slot = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % PARTITION_LOCK_FILES
        return self.root / f"partition-{slot:04d}.lock"

    @contextlib.contextmanager
    def hold(self, spec: DatasetSpec, partitions: Iterable[Partition]) -> Iterator[None]:
        partitions = list(partitions)
        if not partitions:
            yield
            return
        what = f"{spec.name} {partition_label(partitions[0])}" + (
            f" (and {len(partitions) - 1} more partitions)" if len(partitions) > 1 else "")
        with contextlib.ExitStack() as stack:
            for path in sorted({self.path_of(spec, p) for p in partitions}):
                stack.enter_context(self._hold_file(path, what))
            yield

    @contextlib.contextmanager
    def _hold_file(self, path: Path, what: str) -> Iterator[None]:
        held = getattr(_held_locks, "counts", None)
        if held is None:
            held = _held_locks.counts = {}
        key = str(path)
        if key in held:  # this thread holds it already (a write deleting the copies it replaced)
            held[key] += 1
            try:
                yield
            finally:
                held[key] -= 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # One FileLock per hold (thread_local=False: re-entrancy is counted above), so two threads of one
        # process exclude each other just as two processes do. Mode 0o644 as before; it also keeps filelock
        # on flock (which the kernel releases when a holder dies): it tries soft locks only for lock files
        # writable by group or others.
        lock = FileLock(path, mode=0o644, thread_local=False)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            _log.info("%s: waiting for another write, move or compaction of it (lock %s)", what, path)
            try:
                lock.acquire(timeout=self.timeout)
            except Timeout:
                raise LakeStorageError(
                    f"{what}: another write, move or compaction of it has held its lock for over "
                    f"{self.timeout:g} s (lock {path}); nothing was changed, retry when it is done") from None
        held[key] = 1
        try:
            yield
        finally:
            del held[key]
            lock.release()

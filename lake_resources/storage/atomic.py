"""Atomic local writes (``write_atomic``) and the leftovers an interrupted write leaves: finding and
sweeping hidden temp files (``TempFile``, ``LocalArea``, ``TempSweep``)."""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field

from lake_resources.storage.layout import LakeStorageError

#: Leftovers of interrupted writes (hidden temp files, incomplete S3 multipart uploads) are swept once
#: older than this. Six hours: far longer than any one write keeps its temp file (one file written in
#: one call: seconds on local disk, minutes for the largest multipart upload over a slow link), with
#: room for clock skew between this host and the S3 server; the daily migration still sweeps within a
#: day. A writer paused longer than that (a suspended VM) finds its temp gone and fails; nothing is lost.
TEMP_FILE_MIN_AGE_SECONDS = 6 * 3600
# ``.{name}.tmp-{uuid4 hex}``: the only names ``write_atomic`` stages files under. Data, manifest,
# raw-zone and download-cache names never start with a dot, nor do landing pulls the sensor reads (a
# vendor's own hidden in-progress names would also need this exact suffix to match).
_TEMP_NAME = re.compile(r"^\..+\.tmp-[0-9a-f]{32}$")


# --------------------------------------------------------------------------------------------
# Leftovers of interrupted writes
# --------------------------------------------------------------------------------------------
def temp_path_for(path: str) -> str:
    """Where an atomic write stages ``path``: a hidden sibling that no reader lists."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex}")


def is_temp_name(name: str) -> bool:
    return bool(_TEMP_NAME.match(name))


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write a local file atomically and durably: readers see the previous file or the whole new one.

    Staged under ``temp_path_for(path)`` (fsynced, renamed, directory fsynced), so a write killed
    mid-way leaves only a hidden temp file that ``Lake.sweep_temp_files`` removes once stale. Raises
    ``OSError`` (its temp file removed); callers say what was being written.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    tmp = temp_path_for(path)
    try:
        os.makedirs(directory, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class TempFile:
    """A leftover of an interrupted write: a hidden temp file (local tiers and areas) or an incomplete
    multipart upload (S3, ``upload_id`` set), with the bytes it holds and its age."""

    store: str
    uri: str
    bytes: int
    age_seconds: float
    upload_id: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _local_temp_files(root: str, label: str, now: float) -> list[TempFile]:
    """Hidden temp files of ``write_atomic`` anywhere under a local directory."""
    found: list[TempFile] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not is_temp_name(name):
                continue
            path = os.path.join(dirpath, name)
            with contextlib.suppress(FileNotFoundError):  # gone: its write just finished or failed
                st = os.lstat(path)
                found.append(TempFile(label, path, st.st_size, now - st.st_mtime))
    return found


class LocalArea:
    """A local directory outside the tiers whose files are written with ``write_atomic`` (the download
    cache, the local landing area): only its leftovers concern the lake, swept with the tiers' own."""

    def __init__(self, root: str | os.PathLike, label: str):
        self.root = os.fspath(root)
        self.label = label

    def temp_files(self, now: float | None = None) -> list[TempFile]:
        return _local_temp_files(self.root, self.label, time.time() if now is None else now)

    def remove_temp_file(self, temp: TempFile) -> None:
        try:
            os.unlink(temp.uri)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LakeStorageError(f"{self.label}: removing the leftover {temp.uri} failed: {exc}") from exc


@dataclass
class TempSweep:
    """Leftovers found in every Parquet tier, the raw zone, the download cache and the local landing
    area. ``stale`` ones are older than
    ``min_age_seconds`` (``removed`` by a sweep unless it was a dry run); ``fresh`` ones may belong to
    a write in progress and are never touched."""

    min_age_seconds: float
    stale: list[TempFile] = dataclass_field(default_factory=list)
    fresh: list[TempFile] = dataclass_field(default_factory=list)
    removed: list[TempFile] = dataclass_field(default_factory=list)

    def as_dict(self, limit: int = 100) -> dict:
        return {
            "min_age_seconds": self.min_age_seconds,
            "stale_files": len(self.stale), "stale_bytes": sum(t.bytes for t in self.stale),
            "fresh_files": len(self.fresh), "fresh_bytes": sum(t.bytes for t in self.fresh),
            "removed_files": len(self.removed), "removed_bytes": sum(t.bytes for t in self.removed),
            "stale": [t.as_dict() for t in self.stale[:limit]],
        }

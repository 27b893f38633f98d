"""One line per error for the ``lake`` command: what failed and where, and the exit status.

Exit status 2: the input or the configuration is wrong (an argument, a setting, S3 credentials or
bucket). Exit status 1: something failed (a server down, a disk full, a damaged file, a bug).
Nothing here reads the settings again: a bad setting is itself one of the errors explained.
``LAKE_DEBUG=1`` re-raises, so the traceback is there when a developer wants it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping

BAD_INPUT = 2
FAILED = 1


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def redact(text: str, env: Mapping[str, str]) -> str:
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        secret = env.get(name)
        if secret:
            text = text.replace(secret, "***")
    return text


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _s3_where(env: Mapping[str, str]) -> str:
    endpoint = env.get("LAKE_S3_ENDPOINT") or "(LAKE_S3_ENDPOINT unset)"
    return f"S3 at {endpoint}, bucket {env.get('LAKE_S3_BUCKET') or 'quant-lake'}"


def _is_s3(exc: BaseException) -> bool:
    """Raised by botocore/aiobotocore/aiohttp, or by s3fs translating one of theirs."""
    return any(type(e).__module__.split(".")[0] in ("botocore", "aiobotocore", "aiohttp", "s3fs") for e in _chain(exc))


def explain(exc: BaseException, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(exit status, one-line message) for an error that reached the ``lake`` command."""
    import duckdb

    from lake_resources.catalog.instruments import UnknownSymbolError
    from lake_resources.catalog.validation import LakeValidationError
    from lake_resources.storage import LakeStorageError

    env = os.environ if env is None else env
    if isinstance(exc, (LakeValidationError, UnknownSymbolError)):
        return BAD_INPUT, str(exc)  # our own messages: already say what and where (may be several lines)
    if isinstance(exc, LakeStorageError):
        return FAILED, str(exc)
    if _is_s3(exc):
        chain = list(_chain(exc))
        text = _one_line(next((str(e) for e in chain if str(e)), type(exc).__name__))
        if any(isinstance(e, PermissionError) for e in chain):
            return BAD_INPUT, (f"{_s3_where(env)}: access denied ({text}); check AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY")
        if any(type(e).__name__ in ("NoSuchBucket",) or isinstance(e, FileNotFoundError) for e in chain):
            return BAD_INPUT, f"{_s3_where(env)}: not found ({text}); check LAKE_S3_BUCKET"
        if any("Connect" in type(e).__name__ or "Timeout" in type(e).__name__ or isinstance(e, ConnectionError)
               for e in chain):
            return FAILED, f"{_s3_where(env)}: unreachable ({text}); is the server up? (LAKE_S3_ENDPOINT)"
        return FAILED, f"{_s3_where(env)}: {type(exc).__name__}: {text}"
    if isinstance(exc, FileNotFoundError):
        return BAD_INPUT, _one_line(str(exc))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return FAILED, _one_line(f"no space left on device: {exc.filename or exc}")
    if isinstance(exc, duckdb.Error):
        return FAILED, str(exc)
    if isinstance(exc, OSError):
        return FAILED, _one_line(f"{type(exc).__name__}: {exc}")
    return FAILED, _one_line(f"unexpected {type(exc).__name__}: {exc} (LAKE_DEBUG=1 shows the traceback)")

"""Bearer tokens for ``lake serve``: who may read, and who may also run ``POST /sql``.

Tokens come from a token file (``--token-file`` or ``LAKE_SERVE_TOKEN_FILE``) and/or the environment
variable ``LAKE_SERVE_TOKENS``. Each entry is ``name:scope:token``: one per line in the file (``#``
comments and blank lines ignored), comma-separated in the variable. ``scope`` is ``read`` (datasets,
partitions, coverage, rows, metrics) or ``sql`` (all of that and ``POST /sql``). Tokens are at least 16
characters. With no token configured the server answers loopback clients only, and refuses to bind
to any other address. Token values are never logged: requests are logged by the token's name.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lake_resources.catalog.validation import LakeValidationError

SCOPES = ("read", "sql")
MIN_TOKEN_LENGTH = 16
TOKEN_FILE_VAR = "LAKE_SERVE_TOKEN_FILE"
TOKENS_VAR = "LAKE_SERVE_TOKENS"


@dataclass(frozen=True)
class Principal:
    name: str
    scope: str

    def may(self, scope: str) -> bool:
        return self.scope == "sql" or scope == "read"


#: Who a request is when no tokens are configured (loopback only).
LOCAL = Principal("local", "sql")


def _parse_entry(entry: str, where: str) -> tuple[str, str, str]:
    name, sep1, rest = entry.partition(":")
    scope, sep2, token = rest.partition(":")
    name, scope, token = name.strip(), scope.strip(), token.strip()
    if not (sep1 and sep2 and name and token):
        raise LakeValidationError(f"{where}: expected name:scope:token")
    if scope not in SCOPES:
        raise LakeValidationError(f"{where}: unknown scope {scope!r} for {name!r}; use read or sql")
    if len(token) < MIN_TOKEN_LENGTH:
        raise LakeValidationError(f"{where}: the token of {name!r} is shorter than {MIN_TOKEN_LENGTH} characters")
    return name, scope, token


class TokenStore:
    def __init__(self, entries: list[tuple[str, str, str]]):
        self._entries = [(token.encode(), Principal(name, scope)) for name, scope, token in entries]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> list[str]:
        """Who holds a token (never the tokens themselves)."""
        return sorted({p.name for _, p in self._entries})

    @classmethod
    def load(cls, token_file: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> TokenStore:
        env = os.environ if env is None else env
        entries: list[tuple[str, str, str]] = []
        path = token_file or env.get(TOKEN_FILE_VAR)
        if path:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise LakeValidationError(f"token file {path}: cannot read ({exc.strerror})") from None
            for n, line in enumerate(text.splitlines(), 1):
                line = line.strip()
                if line and not line.startswith("#"):
                    entries.append(_parse_entry(line, f"token file {path} line {n}"))
        for n, item in enumerate((env.get(TOKENS_VAR) or "").split(","), 1):
            if item.strip():
                entries.append(_parse_entry(item, f"{TOKENS_VAR} entry {n}"))
        return cls(entries)

    def who(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization: Bearer …`` header, or None (constant-time comparisons)."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[len("Bearer "):].strip().encode()
        found = None
        for token, principal in self._entries:
            if hmac.compare_digest(token, given):
                found = principal
        return found


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: TokenStore) -> None:
    """Refuse a non-loopback bind when nobody needs a token to read the lake."""
    if not is_loopback(host) and not len(tokens):
        raise LakeValidationError(
            f"refusing to serve on {host} without tokens: anyone who can reach it could read the lake; "
            f"set {TOKENS_VAR} or {TOKEN_FILE_VAR} (entries name:scope:token), or bind 127.0.0.1"
        )

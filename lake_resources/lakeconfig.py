"""The lake's own config file: ``LAKE_HOME/lake.toml``.

A lake remembers what it was built with (its feed, its first day, the symbols it ingests), so every
later command in that ``LAKE_HOME`` (``lake backfill``, ``lake ui``, plain ``dagster``) gets the same
settings without anyone exporting them again. Precedence: environment > lake.toml > built-in default.

The mapping is generic: any lake variable (``ENV_VARS`` in ``settings.py``) except the lake's location
and the credentials may live in the file, under its name without ``LAKE_`` in lower case
(``LAKE_DUKASCOPY_URL`` -> ``dukascopy_url``). A list value (``symbols = ["EURUSD", "XAUUSD"]``) is
read as a comma-separated one.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from lake_resources.catalog.validation import LakeValidationError

LAKE_CONFIG_NAME = "lake.toml"
#: Variables that never come from the file: where the lake is, and secrets (environment only).
NOT_IN_FILE = frozenset({"LAKE_HOME", "DAGSTER_HOME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})
ENVIRONMENT = "environment"
DEFAULT = "default"


def file_key(variable: str) -> str:
    """``LAKE_DUKASCOPY_URL`` -> ``dukascopy_url``."""
    return variable.removeprefix("LAKE_").lower()


def config_path(home: Path | str) -> Path:
    return Path(home).expanduser().resolve() / LAKE_CONFIG_NAME


def file_variables(known: Iterable[str]) -> dict[str, str]:
    """File key -> variable name, for every variable that may live in the file."""
    return {file_key(v): v for v in known if v not in NOT_IN_FILE}


def read_lake_config(home: Path | str, known: Iterable[str]) -> dict[str, str]:
    """Variable name -> value from ``home/lake.toml`` ({} when there is none)."""
    path = config_path(home)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LakeValidationError(f"lake config {path}: unreadable: {exc}") from None
    keys = file_variables(known)
    out: dict[str, str] = {}
    for key, value in raw.items():
        if key not in keys:
            raise LakeValidationError(
                f"lake config {path}: unknown key {key!r} (known: {', '.join(sorted(keys))})"
            )
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, str | int | float):
            raise LakeValidationError(f"lake config {path}: {key} must be a string or a list of strings")
        out[keys[key]] = str(value)
    return out


def layered(env: Mapping[str, str], home: Path | str, known: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The environment over the lake's file: (merged variables, variable -> where its value came from)."""
    known = list(known)
    from_file = read_lake_config(home, known)
    where = str(config_path(home))
    sources = {v: where for v in from_file}
    merged = dict(from_file)
    for name in known:
        if env.get(name):
            merged[name] = env[name]
            sources[name] = ENVIRONMENT
    merged.update({k: v for k, v in env.items() if k not in merged})
    return merged, sources


def write_lake_config(home: Path | str, known: Iterable[str], updates: Mapping[str, str | None]) -> Path:
    """Set (or, with None, remove) variables in ``home/lake.toml``; written atomically."""
    known = list(known)
    keys = file_variables(known)
    current = read_lake_config(home, known)
    for name, value in updates.items():
        if name not in keys.values():
            allowed = ", ".join(sorted(keys.values()))
            raise LakeValidationError(f"{name} cannot be set in the lake config (settable: {allowed})")
        if value is None or value == "":
            current.pop(name, None)
        else:
            current[name] = value
    path = config_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# This lake's settings (read by every `lake` and `dagster` command with this LAKE_HOME;",
             "# the environment overrides them). Change with: lake config --set NAME=VALUE"]
    # json.dumps gives a valid TOML basic string for any text
    lines += [f"{file_key(name)} = {json.dumps(value)}" for name, value in sorted(current.items())]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


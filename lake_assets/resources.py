"""Resources configured from the environment with ``EnvVar`` (no secrets in code or in the UI)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource
from lake_resources.lakeconfig import read_lake_config
from lake_resources.settings import (
    DEFAULT_DUKASCOPY_API,
    DEFAULT_DUKASCOPY_FEED,
    DEFAULT_DUKASCOPY_URL,
    ENV_VARS,
    LakeSettings,
)

#: This lake's own settings (``LAKE_HOME/lake.toml``; never secrets), under the environment.
_LAKE_CONFIG = read_lake_config(os.environ.get("LAKE_HOME") or ".lake", ENV_VARS)


def _env(name: str, default: str | None = None):
    """``EnvVar(name)`` when the variable is set (shown as a reference in the UI), else the lake
    config's value, else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else _LAKE_CONFIG.get(name, default)


lake = LakeResource(
    home=_env("LAKE_HOME", str(Path(".lake").resolve())),
    s3_endpoint=_env("LAKE_S3_ENDPOINT"),
    s3_bucket=_env("LAKE_S3_BUCKET", "quant-lake"),
    s3_prefix=_env("LAKE_S3_PREFIX", "lake"),
    s3_region=_env("LAKE_S3_REGION", "us-east-1"),
    s3_verify=_env("LAKE_S3_VERIFY", "true"),
    aws_access_key_id=_env("AWS_ACCESS_KEY_ID"),
    aws_secret_access_key=_env("AWS_SECRET_ACCESS_KEY"),
    dukascopy_url=_env("LAKE_DUKASCOPY_URL", DEFAULT_DUKASCOPY_URL),
    landing=_env("LAKE_LANDING"),
    shared_landing=_env("LAKE_SHARED_LANDING"),
)

RESOURCES = {
    "lake": lake,
    "io_manager": LakeIOManager(lake=lake),
    "dukascopy": DukascopyResource(
        url=_env("LAKE_DUKASCOPY_URL", DEFAULT_DUKASCOPY_URL),
        feed=_env("LAKE_DUKASCOPY_FEED", DEFAULT_DUKASCOPY_FEED),
        api_url=_env("LAKE_DUKASCOPY_API", DEFAULT_DUKASCOPY_API),
        api_batch_pause_seconds=LakeSettings.from_env().dukascopy_api_pause,
        lake=lake,
    ),
}

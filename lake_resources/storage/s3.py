"""S3/MinIO access for every engine the lake uses (s3fs, polars, DuckDB), from one settings object.

Retries are bounded and timeouts short, so a server that is down fails fast with the endpoint named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lake_resources.settings import LakeSettings


def s3fs_kwargs(settings: LakeSettings) -> dict[str, Any]:
    verify = settings.s3_verify
    return {
        "key": settings.aws_access_key_id,
        "secret": settings.aws_secret_access_key,
        "endpoint_url": settings.s3_endpoint,
        "client_kwargs": {"region_name": settings.s3_region, "verify": verify},
        "config_kwargs": {
            "connect_timeout": 5,
            "read_timeout": 30,
            "retries": {"max_attempts": 3, "mode": "standard"},
        },
        # A fresh instance per settings object: s3fs caches instances and their listings otherwise.
        "skip_instance_cache": True,
        "use_listings_cache": False,
    }


def s3_filesystem(settings: LakeSettings):
    import s3fs

    return s3fs.S3FileSystem(**s3fs_kwargs(settings))


def polars_storage_options(settings: LakeSettings) -> dict[str, str]:
    opts = {
        "aws_endpoint_url": settings.s3_endpoint or "",
        "aws_region": settings.s3_region,
        "aws_access_key_id": settings.aws_access_key_id or "",
        "aws_secret_access_key": settings.aws_secret_access_key or "",
    }
    if settings.s3_endpoint and settings.s3_endpoint.startswith("http://"):
        opts["aws_allow_http"] = "true"
    if settings.s3_verify is False:
        opts["aws_allow_invalid_certificates"] = "true"
    return opts


def httpfs_extension_path() -> Path:
    """DuckDB's httpfs extension as shipped by the ``duckdb-extension-httpfs`` wheel (no download)."""
    import duckdb
    import duckdb_extension_httpfs

    root = Path(duckdb_extension_httpfs.__file__).parent
    matches = sorted(root.rglob(f"v{duckdb.__version__}/httpfs.duckdb_extension")) or sorted(
        root.rglob("httpfs.duckdb_extension")
    )
    if not matches:
        raise RuntimeError(f"httpfs extension for duckdb {duckdb.__version__} not found under {root}")
    return matches[0]


def lake_s3_prefix(settings: LakeSettings) -> str:
    """``s3://bucket/prefix/``: everything of this lake in the bucket (cold tier, raw zone, landing)."""
    return "/".join(p for p in (f"s3://{settings.s3_bucket}", settings.s3_prefix.strip("/")) if p) + "/"


#: httpfs settings that default to ``AWS_*`` environment variables when it loads, readable back with
#: ``current_setting``/``duckdb_settings()``: blanked, the lake's key lives only in its secret.
LEGACY_S3_SETTINGS = ("s3_access_key_id", "s3_secret_access_key", "s3_session_token")


def configure_duckdb_s3(con, settings: LakeSettings) -> None:
    """Let a DuckDB connection read ``s3://`` paths of the lake's bucket through a temporary secret
    scoped to the lake's prefix; no setting holds the key (``current_setting`` cannot show it)."""
    if not settings.cold_is_s3:
        return
    con.execute(f"LOAD '{httpfs_extension_path().as_posix()}'")
    for name in LEGACY_S3_SETTINGS:
        con.execute(f"SET {name} = ''")
    endpoint = urlparse(settings.s3_endpoint)
    use_ssl = endpoint.scheme == "https"
    # CREATE SECRET takes no bound parameters; quote the values as SQL literals.
    def lit(value: str | None) -> str:
        return "'" + (value or "").replace("'", "''") + "'"

    con.execute(
        "CREATE OR REPLACE TEMPORARY SECRET lake_s3 (TYPE s3, KEY_ID {k}, SECRET {s}, ENDPOINT {e}, "
        "URL_STYLE 'path', USE_SSL {ssl}, REGION {r}, SCOPE {scope})".format(
            k=lit(settings.aws_access_key_id),
            s=lit(settings.aws_secret_access_key),
            e=lit(endpoint.netloc),
            ssl="true" if use_ssl else "false",
            r=lit(settings.s3_region),
            scope=lit(lake_s3_prefix(settings)),
        )
    )
    # httpfs has two HTTP clients (curl, the default in 1.5, and httplib), each with its own setting.
    if settings.s3_verify is False:
        con.execute("SET enable_server_cert_verification = false")
        con.execute("SET enable_curl_server_cert_verification = false")
    elif isinstance(settings.s3_verify, str):  # a CA bundle path
        con.execute(f"SET ca_cert_file = {lit(settings.s3_verify)}")

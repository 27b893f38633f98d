"""``lake serve``: the lake as a data server (REST + Arrow), and ``LakeClient`` over the network.

Modules: :mod:`.app` (routes, errors, request logs), :mod:`.auth` (bearer tokens, scopes, bind check),
:mod:`.rows` (planning and streaming a rows read, cursors), :mod:`.filters` (the ``where`` language),
:mod:`.formats` (Arrow/Parquet/JSON lines/CSV encoders), :mod:`.catalog` (datasets, partitions,
coverage), :mod:`.metrics` (``/metrics``), :mod:`.remote` (the network client).
"""

from __future__ import annotations

import json
import logging
import os
import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


def configure_logging() -> None:
    """Request logs (JSON lines) on stderr; uvicorn's own access log stays off (ours says who and rows)."""
    logger = logging.getLogger("lake.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s lake.serve %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def run(settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token_file: str | None = None,
        env=None) -> int:
    import uvicorn

    from lake_resources.serve.app import create_app
    from lake_resources.serve.auth import TokenStore, check_bind

    tokens = TokenStore.load(token_file, os.environ if env is None else env)
    check_bind(host, tokens)
    configure_logging()
    logging.getLogger("lake.serve").info(json.dumps({"event": "start", "host": host, "port": port,
                                                     "token_names": tokens.names}))
    uvicorn.run(create_app(settings, tokens), host=host, port=port, access_log=False, log_level="info")
    return 0

"""The ``lake`` command: ``main`` parses and dispatches; one module per command group (demo, backfill,
ui, ...). Nothing below this package imports it."""

from lake_assets.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

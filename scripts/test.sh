#!/usr/bin/env bash
# The README's test command: create/refresh .venv at the repo root, install the project with its
# test extras, then run the whole suite (real DuckDB files, a real S3 server, real Dukascopy files).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"

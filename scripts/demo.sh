#!/usr/bin/env bash
# The README's main-job command: create/refresh .venv at the repo root, install, run `lake demo`
# on the embedded defaults (everything under ./.lake, no servers to start). Arguments go to
# `lake demo` (e.g. --days 5 --symbols EURUSD,XAUUSD,AAPL). Running it again re-uses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/lake demo "$@"

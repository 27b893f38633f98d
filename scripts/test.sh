#!/usr/bin/env bash
# The README's test command: create/refresh .venv at the repo root, install the project with its
# test extras, make sure the browser for the UI tests is there, lint with ruff, then run the whole suite (real DuckDB
# files, a real S3 server, real Dukascopy files, the Dagster UI in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
# lake_tests/test_ui_browser.py drives Debian's chromium through Playwright (the Python package is a
# test extra; `playwright install` is not used: it downloads its own browser, which cannot work here).
if [ ! -x /usr/bin/chromium ]; then
  echo "scripts/test.sh: installing Debian's chromium for the browser tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
  fi
fi
# Lint first (pyproject.toml [tool.ruff]): a dirty tree fails the run before any test.
.venv/bin/ruff check .
# Most tests wait on subprocesses, servers and Dagster runs rather than compute, so several pytest-xdist
# workers share the 2 cores well (one file per worker: module fixtures stay per file).
# LAKE_TEST_WORKERS=0 runs in one process.
exec .venv/bin/python -m pytest -n "${LAKE_TEST_WORKERS:-4}" --dist loadfile "$@"

#!/usr/bin/env bash
# Lint, type-check (strict, on the package) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
"$PY" -m ruff check .
"$PY" -m ruff format --check airplay_provider
"$PY" -m mypy
"$PY" -m pytest -q -p no:cacheprovider "$@"

#!/usr/bin/env bash
# Lint, type-check (strict, on the package, the tests and the benchmarks) and run the whole
# test suite; then, in .venv313 (Python 3.13 and the music-assistant-models Music Assistant 2.8
# pins), mypy and the unit and adapter tests again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
"$PY" -m ruff check .
"$PY" -m ruff format --check airplay_provider tests benchmarks
"$PY" -m mypy
# The whole suite, in parts side by side (scripts/pytest_parts.sh) where network namespaces can
# be made (root); one process otherwise, and always when arguments pick tests.
PARTS="${AIRPLAY_TEST_PARTS:-2}"
if [ $# -eq 0 ] && [ "$PARTS" -gt 1 ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null \
    && ip netns add "aptest-probe$$" 2>/dev/null; then
    ip netns del "aptest-probe$$"
    bash scripts/pytest_parts.sh "$PY" "$PARTS"
else
    "$PY" -m pytest -q -p no:cacheprovider "$@"
fi
if [ -x .venv313/bin/python ]; then
    echo "== Python 3.13 run: $(.venv313/bin/python -c 'import importlib.metadata as m, sys; print(sys.version.split()[0], "music-assistant-models", m.version("music-assistant-models"))')"
    .venv313/bin/python -m mypy --python-version 3.13
    .venv313/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/adapter
else
    echo "== Python 3.13 run skipped: no .venv313 (scripts/setup.sh creates it when Python 3.13 exists)"
fi

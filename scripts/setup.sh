#!/usr/bin/env bash
# Set up a fresh Debian machine: system packages (apt-get) and this package in ./.venv (pip).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-pip ffmpeg shairport-sync avahi-daemon avahi-utils dbus \
    iptables iproute2 >/dev/null
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
# Music Assistant 2.8 runs Python 3.13 with music-assistant-models pinned to this version: a
# second venv runs mypy and the unit/adapter tests the way the package runs inside the server.
MA_MODELS_VERSION=1.1.102
PY313="${PYTHON313:-$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")/versions/3.13.0/bin/python3}"
if [ -x "$PY313" ]; then
    if [ ! -x .venv313/bin/python ]; then
        "$PY313" -m venv .venv313
    fi
    .venv313/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv313/bin/python -m pip install -q -e '.[test]' "music-assistant-models==$MA_MODELS_VERSION"
    echo "setup: .venv313 ready ($(.venv313/bin/python --version), music-assistant-models $MA_MODELS_VERSION)"
else
    echo "setup: no Python 3.13 at $PY313 (set PYTHON313=...): .venv313 not created, test.sh skips the 3.13 run"
fi
echo "setup done: $(.venv/bin/python --version), $(ffmpeg -version | head -n1 | cut -d' ' -f1-3), shairport-sync $(shairport-sync -V 2>/dev/null | cut -d- -f1 || true)"

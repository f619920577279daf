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
echo "setup done: $(.venv/bin/python --version), $(ffmpeg -version | head -n1 | cut -d' ' -f1-3), shairport-sync $(shairport-sync -V 2>/dev/null | cut -d- -f1 || true)"

#!/usr/bin/env bash
# Installs what the report's browser test needs, only when missing (safe to rerun):
#   Debian's chromium (apt-get) and the Python driver playwright (into .venv, or the active Python).
# The test drives /usr/bin/chromium itself (Playwright with executable_path), so no Playwright browser download.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "install-chromium: chromium is missing and this user cannot run apt-get (no root, no sudo)" >&2
            exit 1
        fi
    fi
    echo "install-chromium: installing Debian's chromium"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
fi

if ! "$PY" -c "import playwright.sync_api" >/dev/null 2>&1; then
    echo "install-chromium: installing the playwright Python package into $PY"
    "$PY" -m pip install -q "playwright>=1.40"
fi
echo "install-chromium: $(chromium --version 2>/dev/null || /usr/bin/chromium --version), playwright $("$PY" -c 'from importlib.metadata import version; print(version("playwright"))')"

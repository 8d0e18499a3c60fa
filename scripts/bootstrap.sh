#!/usr/bin/env bash
# Shared by quickstart.sh and test.sh: a virtual environment with gradq installed, and redis-server.
# Idempotent: a second run reuses the venv and only installs what changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRADQ_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    # apt-get update once per run, only when something is actually missing
    if [ -z "${_GRADQ_APT_UPDATED:-}" ]; then as_root apt-get update -qq; _GRADQ_APT_UPDATED=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "gradq needs Python >= 3.11 (found $(python3 --version))" >&2; exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating the virtual environment $VENV"
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$VENV"; }
fi
# pip's and setuptools' chatter goes to a log that is shown only when the install fails
mkdir -p "$ROOT/.state"
PIP_LOG="$ROOT/.state/pip-install.log"
echo "installing gradq${EXTRAS:+[$EXTRAS]} and its dependencies into $VENV (log: $PIP_LOG)"
if ! { "$VENV/bin/python" -m pip install -q --upgrade pip &&
       "$VENV/bin/python" -m pip install -q -e "$ROOT${EXTRAS:+[$EXTRAS]}"; } >"$PIP_LOG" 2>&1; then
    cat "$PIP_LOG" >&2; echo "installing gradq failed (log: $PIP_LOG)" >&2; exit 1
fi

if ! command -v redis-server >/dev/null; then
    echo "installing redis-server (Debian package redis-server)"
    apt_install redis-server
    # the package starts a system service on 6379; gradq runs its own on another port
fi

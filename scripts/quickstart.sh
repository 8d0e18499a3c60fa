#!/usr/bin/env bash
# The local stack in one command: venv + install + redis-server, then `gradq up` (Ctrl-C stops all).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec "$VENV/bin/gradq" up "$@"

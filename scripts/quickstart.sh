#!/usr/bin/env bash
# The local stack in one command: venv + install + redis-server, then `gradq up` (Ctrl-C stops all).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# an explicit (empty) extras argument: a sourced script otherwise sees our own "$@" (--no-demo ...)
# as its $1; bash restores our arguments when it returns, and they all go to `gradq up`
source "$ROOT/scripts/bootstrap.sh" ""
cd "$ROOT"
exec "$VENV/bin/gradq" up "$@"

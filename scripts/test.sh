#!/usr/bin/env bash
# The whole test suite: installs what the tests need (venv, test extras, redis-server), then pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh" test
# Fashion-MNIST from Debian lets the real-data tests run; they skip without it.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
    apt_install dataset-fashion-mnist || echo "dataset-fashion-mnist unavailable; its tests skip"
fi
# tests/multihost builds hosts from network namespaces: as root it needs ip/tc (iproute2) and
# unshare/nsenter (util-linux); without root those tests skip and nothing is installed.
if [ "$(id -u)" = 0 ] && { ! command -v tc >/dev/null || ! command -v nsenter >/dev/null; }; then
    apt_install iproute2 util-linux || echo "iproute2/util-linux unavailable; multihost tests skip"
fi
# The dashboard's browser tests drive Debian's chromium headless (Playwright's own browser
# download is not used); they skip without it.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
    apt_install chromium || echo "chromium unavailable; the browser tests skip"
fi
cd "$ROOT"
# Two pytest-xdist workers by default: the integration tests spend most of their time waiting on
# the processes they start (workers, servers, timeouts), so two share the cores well (fresh-clone
# CI on a 2-core machine: 18 min 23 s serial, 11 min 38-49 s on two). Multi-host tests stay on
# one worker (xdist_group, tests/conftest.py). `-n 0` after the command runs serially.
exec "$VENV/bin/python" -m pytest -n "${GRADQ_TEST_WORKERS:-2}" --dist loadgroup "$@"

"""The harness itself: hosts with their own hostname, /dev/shm and shaped, cuttable links."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.harness import wait_until
from tests.multihost import cluster as cluster_module
from tests.multihost.cluster import Cluster, missing_privileges


def test_without_root_the_harness_names_the_reason(monkeypatch):
    monkeypatch.setattr(cluster_module.os, "geteuid", lambda: 1000)

    reason = missing_privileges()

    assert reason is not None and "needs root" in reason
    with pytest.raises(PermissionError, match="needs root"):
        Cluster(1)


@pytest.mark.multihost
@pytest.mark.integration
def test_hosts_are_separate_machines_on_shaped_links_and_close_leaves_nothing():
    if missing_privileges():
        pytest.skip(f"the multi-host harness {missing_privileges()}")
    with Cluster(2, rate_mbit=100) as cluster:
        a, b = cluster.hosts
        tag = cluster.tag

        assert [a.inside("hostname").strip(), b.inside("hostname").strip()] == ["host0", "host1"]
        a.inside("touch", "/dev/shm/gradq-harness-probe")
        assert "gradq-harness-probe" not in b.inside("ls", "/dev/shm")
        assert (
            "gradq-harness-probe"
            not in subprocess.run(["ls", "/dev/shm"], capture_output=True, text=True).stdout
        )
        assert (
            "rate 100Mbit"
            in subprocess.run(
                ["tc", "qdisc", "show", "dev", a.link], capture_output=True, text=True
            ).stdout
        )
        assert "rate 100Mbit" in a.inside("tc", "qdisc", "show", "dev", "eth0")
        listener = a.popen(["python3", "-m", "http.server", "8000", "--bind", a.address],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        assert wait_until(lambda: _connects(a.address, 8000, 0.5), 15, "the host's server")

        a.cut()
        cut_off = not _connects(a.address, 8000, timeout=1.0)
        a.restore()

        assert cut_off
        assert wait_until(lambda: _connects(a.address, 8000, 0.5), 15, "the restored link")
        listener.kill()

    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert tag not in links


def _connects(address: str, port: int, timeout: float) -> bool:
    try:
        socket.create_connection((address, port), timeout=timeout).close()
        return True
    except OSError:
        return False

"""Fixtures of the multi-host tests: a control host running Redis and worker hosts (root only)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.multihost.cluster import Cluster, missing_privileges
from tests.multihost.site import Site


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    """A control host and three worker hosts on 1 Gbit/s links, deleted afterwards."""
    reason = missing_privileges()
    if reason:
        pytest.skip(f"the multi-host harness {reason}")
    with Cluster(4, rate_mbit=1000) as cluster:
        site = Site(cluster, tmp_path)
        try:
            yield site
        finally:
            site.stop()

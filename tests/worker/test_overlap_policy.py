"""Where a step overlaps its exchange with backward: the spec's overlap and the transport."""

from __future__ import annotations

import pytest

from worker.steps import overlap_applies


@pytest.mark.parametrize("small", [True, False])
def test_unset_measures_over_tcp_and_never_overlaps_elsewhere(small):
    assert overlap_applies(None, "tcp", small) == "measure"
    for transport in ("shm", "hierarchical", "redis"):
        assert not overlap_applies(None, transport, small), transport


def test_false_never_overlaps_and_true_overlaps_where_buckets_can_travel_alone():
    assert not any(overlap_applies(False, t, s) for t in ("tcp", "redis") for s in (True, False))
    assert overlap_applies(True, "tcp", False)
    assert overlap_applies(True, "redis", True)  # one message per bucket
    assert not overlap_applies(True, "redis", False)  # the ring's chunks: bucketing costs more
    assert not overlap_applies(True, "shm", True)  # the whole exchange takes ~0.1-0.3 ms

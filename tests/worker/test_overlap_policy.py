"""Where a step overlaps its exchange with backward: the spec's overlap and the transport."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from worker.replica import FlatGradients
from worker.steps import overlap_applies, overlap_ignored


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


def _attempt(overlap, transport: str, shards: int, parameters: int = 10):
    ctx = SimpleNamespace(num_shards=shards, transport=transport)
    replica = SimpleNamespace(spec={} if overlap is None else {"overlap": overlap})
    return ctx, replica, FlatGradients({"w": np.zeros(parameters, np.float32)})


@pytest.mark.parametrize(
    ("transport", "shards", "local_sgd", "reason"),
    [
        ("none", 1, False, "one shard"),
        ("shm", 2, False, "share a host"),
        ("hierarchical", 4, False, "hierarchical transport"),
        ("tcp", 2, True, "local SGD"),
    ],
)
def test_a_requested_overlap_that_cannot_apply_is_said_with_its_reason(
    transport, shards, local_sgd, reason
):
    note = overlap_ignored(*_attempt(True, transport, shards), local_sgd)

    assert note.startswith("overlap: true has no effect on this attempt:")
    assert reason in note


def test_a_requested_overlap_that_applies_or_an_unset_one_says_nothing():
    assert overlap_ignored(*_attempt(True, "tcp", 2), False) is None
    assert overlap_ignored(*_attempt(True, "redis", 2), False) is None  # small: one message
    assert overlap_ignored(*_attempt(None, "shm", 2), False) is None
    assert overlap_ignored(*_attempt(False, "shm", 2), False) is None
    big = overlap_ignored(*_attempt(True, "redis", 2, parameters=2_000_000), False)
    assert "below 1,000,000 parameters" in big

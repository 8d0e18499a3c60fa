"""OverlapChoice: warm-up, a plain probe, an overlapped probe, then the averaged vote decides."""

from __future__ import annotations

import pytest

from worker.collective.overlap_choice import PROBE, WARMUP, OverlapChoice


def _run(choice: OverlapChoice, seconds: dict[bool, float], voted: float) -> list[bool]:
    """Every step until the decision; -> the path of each step."""
    paths = []
    for i in range(WARMUP + 2 * PROBE + 1):
        paths.append(choice.overlap(i))
        vote = choice.vote(i)
        if i == WARMUP + 2 * PROBE:
            assert vote == pytest.approx(seconds[True] - seconds[False])
        else:
            assert vote == 0.0
        choice.step_done(i, seconds[paths[-1]], voted if i == WARMUP + 2 * PROBE else 0.0)
    return paths


def test_the_probe_runs_plain_then_overlapped_steps_then_votes_their_difference():
    choice = OverlapChoice()

    paths = _run(choice, {False: 0.010, True: 0.007}, voted=-0.002)

    assert paths == [False] * (WARMUP + PROBE) + [True] * PROBE + [False]
    assert choice.timed == {False: pytest.approx(0.010 * PROBE), True: pytest.approx(0.007 * PROBE)}
    assert choice.decided is True and choice.overlap(99) is True
    assert choice.explain() == (
        f"overlap measured over {PROBE} + {PROBE} steps: plain 10.0 ms, overlapped 7.0 ms per "
        "step here, 2.0 ms faster overlapped on average over the shards: overlapping for the "
        "rest of this attempt"
    )


def test_the_averaged_vote_decides_even_against_this_shards_own_timing():
    choice = OverlapChoice()

    _run(choice, {False: 0.010, True: 0.007}, voted=+0.001)  # the peers found overlap slower

    assert choice.decided is False and choice.overlap(WARMUP + 2 * PROBE + 5) is False

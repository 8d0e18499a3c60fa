"""OverlapChoice: warm-up, alternating blocks of plain and overlapped steps, then the averaged
vote of the median difference decides."""

from __future__ import annotations

import pytest

from worker.collective.overlap_choice import BLOCK, PROBE_STEPS, TIMED, WARMUP, OverlapChoice


def _run(choice: OverlapChoice, seconds, voted: float) -> list[bool]:
    """Every step until the decision, each taking ``seconds(i, overlap)``; -> their paths."""
    paths = []
    for i in range(WARMUP + PROBE_STEPS + 1):
        paths.append(choice.overlap(i))
        vote = choice.vote(i)
        if i != WARMUP + PROBE_STEPS:
            assert vote == 0.0
        choice.step_done(i, seconds(i, paths[-1]), voted if i == WARMUP + PROBE_STEPS else 0.0)
    return paths


def test_the_probe_alternates_blocks_of_each_path_then_votes_the_median_difference():
    choice = OverlapChoice()

    paths = _run(choice, lambda i, overlap: 0.007 if overlap else 0.010, voted=-0.002)

    plain, overlapped = [False] * BLOCK, [True] * BLOCK
    assert paths == [False] * WARMUP + (plain + overlapped) * (PROBE_STEPS // (2 * BLOCK)) + [False]
    assert len(choice.timed[False]) == len(choice.timed[True]) == TIMED < PROBE_STEPS // 2
    assert choice.vote(WARMUP + PROBE_STEPS) == pytest.approx(-0.003)
    assert choice.decided is True and choice.overlap(99) is True
    assert choice.explain() == (
        f"overlap measured over {TIMED} + {TIMED} steps in alternating blocks: plain 10.0 ms, "
        "overlapped 7.0 ms per step on this shard (medians); averaged over all shards, "
        "overlapped steps were 2.0 ms faster: overlapping for the rest of this attempt"
    )


def test_outliers_and_the_path_changing_steps_do_not_sway_the_vote():
    def seconds(i: int, overlap: bool) -> float:
        if (i - WARMUP) % BLOCK == 0:  # a block's first step: the path changes, not timed
            return 1.0
        if i % 7 == 0:  # a step that also read Redis or collected garbage
            return 0.050
        return 0.007 if overlap else 0.010

    choice = OverlapChoice()
    _run(choice, seconds, voted=-0.003)

    assert choice.median(False) == pytest.approx(0.010)
    assert choice.median(True) == pytest.approx(0.007)
    assert choice.vote(WARMUP + PROBE_STEPS) == pytest.approx(-0.003)


def test_the_averaged_vote_decides_even_against_this_shards_own_timing():
    choice = OverlapChoice()

    _run(choice, lambda i, overlap: 0.007 if overlap else 0.010, voted=+0.001)

    assert choice.decided is False and choice.overlap(WARMUP + PROBE_STEPS + 5) is False

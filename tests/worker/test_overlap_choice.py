"""OverlapChoice: warm-up, alternating blocks of plain and overlapped steps, then the averaged
vote of the median difference decides; every REPROBE_EVERY steps it measures again and decides
on the last two probes."""

from __future__ import annotations

import pytest

from worker.collective.overlap_choice import (
    BLOCK,
    PROBE_STEPS,
    REPROBE_EVERY,
    TIMED,
    WARMUP,
    OverlapChoice,
)


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
        f"overlapped steps were 2.0 ms faster: overlapping; measured again every {REPROBE_EVERY} "
        "steps"
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


def _run_alone(choice: OverlapChoice, steps: range, seconds) -> list[bool]:
    """Steps of one shard, whose own vote is the average; -> their paths."""
    paths = []
    for i in steps:
        paths.append(choice.overlap(i))
        choice.step_done(i, seconds(i, paths[-1]), choice.vote(i))
    return paths


def test_a_later_probe_overrules_a_wrong_first_one_by_pooling_both():
    # seventh machine, 3 hosts: the first probe read overlapped 21.0 ms against plain 20.6,
    # while the whole run showed overlapped steps at 17.6 ms and plain ones at 21.1
    choice = OverlapChoice()
    first = WARMUP + PROBE_STEPS + 1
    _run_alone(choice, range(first), lambda i, overlap: 0.0210 if overlap else 0.0206)
    assert choice.decided is False and choice.changed is True

    second = WARMUP + REPROBE_EVERY
    between = _run_alone(
        choice, range(first, second), lambda i, overlap: 0.0176 if overlap else 0.0211
    )
    assert between == [False] * (second - first)  # the decision holds between probes

    probe = _run_alone(
        choice,
        range(second, second + PROBE_STEPS + 1),
        lambda i, overlap: 0.0176 if overlap else 0.0211,
    )

    plain, overlapped = [False] * BLOCK, [True] * BLOCK
    assert probe[:-1] == (plain + overlapped) * (PROBE_STEPS // (2 * BLOCK))
    assert len(choice.timed[True]) == len(choice.timed[False]) == 2 * TIMED
    assert choice.decided is True and choice.changed is True
    assert choice.decided_at == second + PROBE_STEPS
    assert choice.median(True) == pytest.approx((0.0176 + 0.0210) / 2)
    assert choice.explain().startswith(
        f"overlap measured again (this probe and the one before) over {2 * TIMED} + {2 * TIMED} "
        "steps in alternating blocks: plain 20.9 ms, overlapped 19.3 ms"
    )
    assert "overlapping from now on" in choice.explain()


def test_a_vote_pools_only_the_last_two_probes_and_a_held_path_is_no_change():
    choice = OverlapChoice()

    def seconds(i: int, overlap: bool) -> float:
        if i < WARMUP + REPROBE_EVERY:  # the first probe alone: overlapped steps look slow
            return 0.050 if overlap else 0.010
        return 0.007 if overlap else 0.010

    done = 0

    def through_probe(k: int) -> None:  # every step up to the vote that ends probe k
        nonlocal done
        end = WARMUP + k * REPROBE_EVERY + PROBE_STEPS + 1
        _run_alone(choice, range(done, end), seconds)
        done = end

    through_probe(0)
    through_probe(1)  # pooled with the first probe, the median still says plain
    assert choice.decided is False and choice.changed is False
    through_probe(2)

    assert choice.timed[True] == [0.007] * (2 * TIMED)  # the first probe's are gone
    assert choice.decided is True and choice.changed is True

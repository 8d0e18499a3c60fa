"""Whether a tcp job overlaps its exchange (spec ``overlap`` unset): measured, the same on every
shard.

Overlap (buckets posted during backward, updates and the next forward during the exchange)
hides a slow link's wire time but costs CPU on every step: more sends, row-block GEMMs, span
updates. bench/multihost.py on the MLP (quiet, 2 hosts, batch 1024; docs/distributed.md): at
1 Gbit/s it took the step from 14.0 to 9.4 ms, at 10 Gbit/s it lost (7.4 -> 8.7 ms). Which one
wins depends on the link, the model and the CPU, so each attempt measures both: after
``WARMUP`` plain steps, ``PROBE`` plain then ``PROBE`` overlapped steps, timed on every shard.
Each shard then puts its
(overlapped - plain) mean step time in the gradient vector's vote slot; the exchange averages
it, so every shard reads the same number and makes the same choice for the rest of the attempt.
Both paths give the same bits (tested), so the choice changes speed only, never the weights.
"""

from __future__ import annotations

import time

WARMUP = 2  # steps that build buffers and connections: not timed
PROBE = 10  # timed steps of each kind (5 picked the slower path once in 16 bench rows)


class OverlapChoice:
    """Per attempt: ``overlap(i)`` for its i-th step, ``vote(i)`` for the vote slot of that
    step's exchange, ``step_done(i, seconds, voted)`` after it with the averaged vote."""

    def __init__(self) -> None:
        self.timed = {False: 0.0, True: 0.0}
        self.decided: bool | None = None
        self.decided_at, self.voted = -1, 0.0  # the step that decided, and the averaged vote
        self.steps = 0  # steps of this attempt so far: the same count on every shard

    def overlap(self, i: int) -> bool:
        if self.decided is not None:
            return self.decided
        return WARMUP + PROBE <= i < WARMUP + 2 * PROBE

    def vote(self, i: int) -> float:
        """Seconds an overlapped step took more than a plain one, in the step after the probe."""
        if i != WARMUP + 2 * PROBE:
            return 0.0
        return (self.timed[True] - self.timed[False]) / PROBE

    def step_done(self, i: int, seconds: float, voted: float) -> None:
        if WARMUP <= i < WARMUP + 2 * PROBE:
            self.timed[self.overlap(i)] += seconds
        elif i == WARMUP + 2 * PROBE:
            self.decided, self.decided_at, self.voted = voted < 0.0, i, voted

    def explain(self) -> str:
        """The job-log line of the decision (this shard's timings, every shard's vote)."""
        plain, overlapped = (self.timed[k] / PROBE * 1e3 for k in (False, True))
        verdict = "overlapping" if self.decided else "not overlapping"
        return (
            f"overlap measured over {PROBE} + {PROBE} steps: plain {plain:.1f} ms, overlapped "
            f"{overlapped:.1f} ms per step here, {abs(self.voted) * 1e3:.1f} ms "
            f"{'faster' if self.decided else 'slower'} overlapped on average over the shards: "
            f"{verdict} for the rest of this attempt"
        )


def timed_step(choice: OverlapChoice, flat, run) -> float:
    """Run ``run(overlap) -> loss`` as the attempt's next step, voting in ``flat.extra[1]``."""
    i, choice.steps = choice.steps, choice.steps + 1
    flat.extra[1] = choice.vote(i)
    started = time.perf_counter()
    loss = run(choice.overlap(i))
    choice.step_done(i, time.perf_counter() - started, float(flat.extra[1]))
    return loss

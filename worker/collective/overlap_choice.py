"""Whether a tcp job overlaps its exchange (spec ``overlap`` unset): measured, the same on every
shard.

Overlap (buckets posted during backward, updates and the next forward during the exchange)
hides a slow link's wire time but costs CPU on every step: more sends, row-block GEMMs, span
updates. bench/multihost.py on the MLP (quiet, 2 hosts, batch 1024; docs/distributed.md): at
1 Gbit/s it took the step from 14.0 to 9.4 ms, at 10 Gbit/s it lost (7.4 -> 8.7 ms). Which one
wins depends on the link, the model and the CPU, so each attempt measures both: after
``WARMUP`` plain steps, ``BLOCKS`` blocks of ``BLOCK`` plain steps alternating with as many
blocks of overlapped steps, timed on every shard. Each shard then puts its (overlapped - plain)
difference of median step times in the gradient vector's vote slot; the exchange averages it,
so every shard reads the same number and makes the same choice for the rest of the attempt.
Both paths give the same bits (tested), so the choice changes speed only, never the weights.

Why alternating blocks and medians: on a busy machine (three hosts sharing two cores) one plain
block of 10 steps then one overlapped block, compared by means, picked plain, 5% slower, in one
of five attempts of bench/multihost.py's MLP at 3 hosts, batch 256, 1 Gbit/s: a drift in the
machine's load lands on one path only, and the steps that also read Redis's flags (every 0.1 s)
or collect garbage are outliers a mean keeps. The first step of every block is not timed: it
changes path (the pipelined step primes the next step's first layer; a plain step after it
recomputes that).
"""

from __future__ import annotations

import statistics
import time

WARMUP = 2  # steps that build buffers and connections: not timed
BLOCK = 5  # steps in a block of one path; its first one is not timed
BLOCKS = 4  # blocks of each path, alternating plain / overlapped
PROBE_STEPS = 2 * BLOCK * BLOCKS  # after the warm-up; the next step votes
TIMED = BLOCKS * (BLOCK - 1)  # timed steps of each path


class OverlapChoice:
    """Per attempt: ``overlap(i)`` for its i-th step, ``vote(i)`` for the vote slot of that
    step's exchange, ``step_done(i, seconds, voted)`` after it with the averaged vote."""

    def __init__(self) -> None:
        self.timed: dict[bool, list[float]] = {False: [], True: []}  # seconds of timed steps
        self.decided: bool | None = None
        self.decided_at, self.voted = -1, 0.0  # the step that decided, and the averaged vote
        self.steps = 0  # steps of this attempt so far: the same count on every shard

    def overlap(self, i: int) -> bool:
        if self.decided is not None:
            return self.decided
        return _probing(i) and (i - WARMUP) // BLOCK % 2 == 1

    def vote(self, i: int) -> float:
        """Seconds an overlapped step took more than a plain one (medians), in the step after
        the probe."""
        if i != WARMUP + PROBE_STEPS:
            return 0.0
        return self.median(True) - self.median(False)

    def median(self, overlap: bool) -> float:
        return statistics.median(self.timed[overlap])

    def step_done(self, i: int, seconds: float, voted: float) -> None:
        if _probing(i) and (i - WARMUP) % BLOCK != 0:
            self.timed[self.overlap(i)].append(seconds)
        elif i == WARMUP + PROBE_STEPS:
            self.decided, self.decided_at, self.voted = voted < 0.0, i, voted

    def explain(self) -> str:
        """The job-log line of the decision (this shard's timings, every shard's vote)."""
        plain, overlapped = (self.median(k) * 1e3 for k in (False, True))
        verdict = "overlapping" if self.decided else "not overlapping"
        return (
            f"overlap measured over {TIMED} + {TIMED} steps in alternating blocks: plain "
            f"{plain:.1f} ms, overlapped {overlapped:.1f} ms per step on this shard (medians); "
            f"averaged over all shards, overlapped steps were {abs(self.voted) * 1e3:.1f} ms "
            f"{'faster' if self.decided else 'slower'}: {verdict} for the rest of this attempt"
        )


def _probing(i: int) -> bool:
    return WARMUP <= i < WARMUP + PROBE_STEPS


def timed_step(choice: OverlapChoice, flat, run) -> float:
    """Run ``run(overlap) -> loss`` as the attempt's next step, voting in ``flat.extra[1]``."""
    i, choice.steps = choice.steps, choice.steps + 1
    flat.extra[1] = choice.vote(i)
    started = time.perf_counter()
    loss = run(choice.overlap(i))
    choice.step_done(i, time.perf_counter() - started, float(flat.extra[1]))
    return loss

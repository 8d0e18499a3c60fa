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
so every shard reads the same number and makes the same choice.
Both paths give the same bits (tested), so the choice changes speed only, never the weights.

Why it measures again every ``REPROBE_EVERY`` steps, deciding on the last two probes' timings:
one probe can be wrong. bench/multihost.py's MLP at 3 hosts, batch 1024, 1 Gbit/s (seventh
machine, docs/distributed.md): one attempt's probe read overlapped 21.0 ms against plain
20.6, so it kept plain for the whole run at 20.8 ms a step, while the forced overlap ran at
17.6 (its other attempt's probe read 17.6 against 20.2 and overlapped). A link's speed can
also change during a long job. A close call stays close: in a later run of the same cell a
re-probe turned a right choice (a 6% gap) into plain. Pooling halves a vote's noise and no
single probe decides a whole job, nothing more. A re-probe costs at most ``PROBE_STEPS / 2``
steps on the slower path per ``REPROBE_EVERY`` steps: with the 20% gap above, under 2% of the
time.

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
TIMED = BLOCKS * (BLOCK - 1)  # timed steps of each path in one probe
REPROBE_EVERY = 250  # steps from one probe's start to the next one's
WINDOW = 2  # probes whose timings a vote pools: the latest one and the one before


class OverlapChoice:
    """Per attempt: ``overlap(i)`` for its i-th step, ``vote(i)`` for the vote slot of that
    step's exchange, ``step_done(i, seconds, voted)`` after it with the averaged vote."""

    def __init__(self) -> None:
        self.probes: list[dict[bool, list[float]]] = []  # seconds of timed steps, last WINDOW
        self.decided: bool | None = None
        self.decided_at, self.voted = -1, 0.0  # the step that decided, and the averaged vote
        self.changed = False  # whether that decision changed the path (or was the first)
        self.steps = 0  # steps of this attempt so far: the same count on every shard

    @property
    def timed(self) -> dict[bool, list[float]]:
        """Seconds of the timed steps of each path in the probes the next vote pools."""
        return {path: [t for probe in self.probes for t in probe[path]] for path in (False, True)}

    def overlap(self, i: int) -> bool:
        phase = _probe_phase(i)
        if phase is None:
            return bool(self.decided)
        return phase // BLOCK % 2 == 1

    def vote(self, i: int) -> float:
        """Seconds an overlapped step took more than a plain one (medians), in the step after
        each probe."""
        if not _votes(i):
            return 0.0
        return self.median(True) - self.median(False)

    def median(self, overlap: bool) -> float:
        return statistics.median(self.timed[overlap])

    def step_done(self, i: int, seconds: float, voted: float) -> None:
        phase = _probe_phase(i)
        if phase == 0:
            self.probes = [*self.probes[1 - WINDOW :], {False: [], True: []}]
        if phase is not None and phase % BLOCK != 0:
            self.probes[-1][self.overlap(i)].append(seconds)
        elif _votes(i):
            before = self.decided
            self.decided, self.decided_at, self.voted = voted < 0.0, i, voted
            self.changed = before != self.decided

    def explain(self) -> str:
        """The job-log line of the latest decision (this shard's timings, every shard's vote)."""
        plain, overlapped = (self.median(k) * 1e3 for k in (False, True))
        verdict = "overlapping" if self.decided else "not overlapping"
        timed = len(self.timed[False])
        first = self.decided_at == WARMUP + PROBE_STEPS
        what = "measured" if first else "measured again (this probe and the one before)"
        return (
            f"overlap {what} over {timed} + {timed} steps in alternating blocks: plain "
            f"{plain:.1f} ms, overlapped {overlapped:.1f} ms per step on this shard (medians); "
            f"averaged over all shards, overlapped steps were {abs(self.voted) * 1e3:.1f} ms "
            f"{'faster' if self.decided else 'slower'}: {verdict}"
            f"{'' if first else ' from now on'}; measured again every {REPROBE_EVERY} steps"
        )


def _probe_phase(i: int) -> int | None:
    """Step i's place in its probe (0 .. PROBE_STEPS - 1), or None outside the probes."""
    if i < WARMUP:
        return None
    phase = (i - WARMUP) % REPROBE_EVERY
    return phase if phase < PROBE_STEPS else None


def _votes(i: int) -> bool:
    """Whether step i's exchange carries the vote of the probe just ended."""
    return i >= WARMUP and (i - WARMUP) % REPROBE_EVERY == PROBE_STEPS


def timed_step(choice: OverlapChoice, flat, run) -> float:
    """Run ``run(overlap) -> loss`` as the attempt's next step, voting in ``flat.extra[1]``."""
    i, choice.steps = choice.steps, choice.steps + 1
    flat.extra[1] = choice.vote(i)
    started = time.perf_counter()
    loss = run(choice.overlap(i))
    choice.step_done(i, time.perf_counter() - started, float(flat.extra[1]))
    return loss

"""A planned stop: every shard of an attempt stops at one agreed step, and shard 0 saves it first.

When a worker is stopped (SIGTERM, ``worker.stopping``), handing the job back at once threw away
every step since the last checkpoint (with checkpoints only at epoch ends, up to a whole epoch).
Instead, the first shard that sees its stop writes ``stop_at = "S k"`` for its attempt (S: a step a
little ahead, k: its shard), through the attempt fence. Every shard reads the key with the cancel
flag (``ShardContext.check_flags``) and, at the top of step S, stops: shard 0 saves a checkpoint
exactly as the periodic save would at S (same weights, optimizer state, RNG and batch position, so
the resumed run is bit for bit the uninterrupted one), then requeues the attempt uncounted; the
other shards wait for that requeue and leave.

Why S is "a little ahead": the peers read flags at most FLAG_CHECK_SECONDS apart, and steps are
synchronous, so S is at least two steps ahead (a peer's check at the top of S comes after an
exchange the stopping shard joins only after writing the key) and LEAD_SECONDS of steps ahead
(fast steps pass several per check). A shard that learns S only after starting step S (a paused
process) cannot save S: it falls back to the immediate hand-back, as does a stopping shard that
has not reached S within GRACE_SECONDS (slow steps, peers that do not come), a local-SGD job (its
replicas differ between syncs) and a shard not yet training. A fallback requeues the attempt before
any checkpoint at S is published; the fence then refuses that save, so a resume never mixes states.
"""

from __future__ import annotations

import math
import time

import redis as redis_lib

from worker.recovery import ATTEMPT_TTL_SECONDS, attempt_key
from worker.stopping import WorkerStoppingError

GRACE_SECONDS = 5.0  # the stopping shard reaches S within this, or hands back without saving
LEAD_SECONDS = 0.3  # three flag checks of a peer (FLAG_CHECK_SECONDS apart) before S
MIN_STEPS_AHEAD = 2
POLL_SECONDS = 0.05  # how often shards other than 0 look whether shard 0 has requeued


def stop_key(job_id: str, attempt: int) -> str:
    return attempt_key(job_id, attempt, "stop_at")


class PlannedStop:
    """One shard's view of its attempt's planned stop (``ShardContext.stop``)."""

    def __init__(self, fence, shard: int):
        self.fence, self.shard = fence, shard
        self.supported = False  # the training loop turns it on (exact averaging only)
        self.step: int | None = None  # the step this shard is at (or inside, once started)
        self.started = False  # inside ``step`` (its gradient or exchange), past its top
        self.step_seconds: float | None = None  # running estimate of one step's duration
        self._step_began: float | None = None
        self.at: int | None = None  # the agreed stop step, once known
        self.by: int | None = None  # the shard whose worker is stopping
        self.deadline: float | None = None  # set where the worker itself is stopping

    def step_top(self, step: int) -> None:
        """The training loop is at the top of ``step`` (nothing of it computed yet)."""
        now = time.monotonic()
        if self._step_began is not None and self.step is not None and step == self.step + 1:
            took = now - self._step_began
            previous = self.step_seconds
            self.step_seconds = took if previous is None else 0.8 * previous + 0.2 * took
        self.step, self.started, self._step_began = step, False, now

    def step_started(self) -> None:
        self.started = True

    def due(self) -> bool:
        """Stop here: this shard is at the top of the agreed step."""
        return self.at is not None and self.step == self.at and not self.started

    def worker_stopping(self) -> None:
        """This process got SIGTERM: agree on S (first time), or raise WorkerStoppingError (the
        immediate hand-back) when a saved stop is not possible or its grace has passed."""
        if self.deadline is None:
            self.deadline = time.monotonic() + GRACE_SECONDS
            if self.at is None:
                self._propose()
        if self.at is None or time.monotonic() > self.deadline or self._missed():
            raise WorkerStoppingError("its worker is stopping (SIGTERM)")

    def learn(self, raw: bytes | None) -> None:
        """The stop key's value as read with the flags; WorkerStoppingError if S already passed."""
        if raw is None or self.at is not None:
            if self._missed():
                raise WorkerStoppingError(f"shard {self.by}'s worker is stopping")
            return
        at, by = raw.decode().split()
        self.at, self.by = int(at), int(by)
        if not self.supported or self._missed():
            raise WorkerStoppingError(f"shard {self.by}'s worker is stopping")

    def reason(self) -> str:
        """The requeue's reason: which shard's worker was stopped."""
        stopped = self.shard if self.by is None else self.by
        return f"shard {stopped}'s worker was stopped (SIGTERM)"

    def wait_for_requeue(self) -> bool:
        """Shards other than 0 at S: wait (at most GRACE_SECONDS) until shard 0, having saved,
        requeued the attempt. False: it did not; the caller requeues itself."""
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline:
            if not self.fence.current():
                return True
            time.sleep(POLL_SECONDS)
        return False

    def _missed(self) -> bool:
        return (
            self.at is not None
            and self.step is not None
            and (self.step > self.at or (self.step == self.at and self.started))
        )

    def _propose(self) -> None:
        """Write S through the fence unless a peer already did; adopt whichever value stands."""
        if not self.supported or self.step is None:
            return  # not training (yet), or local SGD: the immediate hand-back
        ahead = MIN_STEPS_AHEAD
        if self.step_seconds:
            if MIN_STEPS_AHEAD * self.step_seconds > GRACE_SECONDS:
                return  # S could not be reached in time
            ahead = max(ahead, math.ceil(LEAD_SECONDS / self.step_seconds))
        # a step already started cannot be saved at its top: count from the next one
        first = self.step + 1 if self.started else self.step
        key = stop_key(self.fence.job_id, self.fence.attempt)
        value = f"{first + ahead} {self.shard}"
        try:
            replies = self.fence.commit(
                lambda pipe: pipe.set(key, value, nx=True, ex=ATTEMPT_TTL_SECONDS).get(key)
            )
        except (redis_lib.ConnectionError, redis_lib.TimeoutError):  # hand back at once
            return
        self.learn(replies[-1])

"""Who a shard is, how it reaches its peers, and the per-step checks it makes while training."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import redis as redis_lib

from worker.collective.allreduce import allreduce_mean
from worker.config import Settings
from worker.fence import AttemptFence
from worker.jobs import JobStore, cancel_key
from worker.planned_stop import PlannedStop, stop_key
from worker.recovery import AttemptAbortedError, ResumeMismatchError, attempt_key, check_attempt
from worker.stopping import STOP, WorkerStoppingError

# The cancel/abort flags are read at most this often between steps (and on every wait for a
# peer): one Redis round trip per step cost ~0.1-0.2 ms of a 7 ms 2-shard step, and cancel has 2 s.
FLAG_CHECK_SECONDS = 0.1


# Redis unreachable (its host's link down, a restart): the control plane is out, not the job.
CONTROL_ERRORS = (redis_lib.ConnectionError, redis_lib.TimeoutError)
UNREACHABLE = object()  # what ``ShardContext.control`` returns while Redis is out


class JobCancelledError(RuntimeError):
    """The cancel flag was seen: stop at this step."""


class ControlPlaneLostError(RuntimeError):
    """Redis stayed unreachable longer than the peer timeout: this shard gives up its attempt
    without writing anything (the peers, or the sweep, restart the job from its checkpoint)."""


@dataclass
class ShardContext:
    """Who this shard is and how it reaches Redis (``data`` is the bulk-vector client)."""

    store: JobStore
    data: object
    job_id: str
    shard: int
    attempt: int
    num_shards: int
    settings: Settings
    step_hook: object = None  # tests: called as hook(global_step) after each update
    comm_seconds: float = field(default=0.0)
    flags_checked_at: float = field(default=-1e9)
    transport: str = "redis"  # per attempt: shm, hierarchical, tcp, redis or none
    shm: object = None  # the connected SharedSegments when transport is "shm"
    mesh: object = None  # the connected TcpMesh ("tcp") or HierarchicalExchange ("hierarchical")
    control_down_since: float | None = None  # when Redis calls started failing
    on_stopping: object = None  # requeues the attempt uncounted (a worker of it is stopping)
    # every write to the job's shared state goes through it (worker.fence)
    fence: AttemptFence = field(init=False)
    stop: PlannedStop = field(init=False)  # the step all shards stop at when a worker stops

    def __post_init__(self) -> None:
        self.fence = AttemptFence(self.store, self.job_id, self.attempt)
        self.stop = PlannedStop(self.fence, self.shard)

    def key(self, name: str) -> str:
        return f"gradq:ar:{self.job_id}:a{self.attempt}:{name}"

    def check_flags_now_and_then(self) -> None:
        """``check_flags`` when FLAG_CHECK_SECONDS have passed since the last check."""
        if time.monotonic() - self.flags_checked_at >= FLAG_CHECK_SECONDS:
            self.check_flags()

    def control(self, operation):
        """``operation()`` (a Redis call), or UNREACHABLE while Redis is out for less than the
        peer timeout: with direct transports the shards keep training through a short outage
        of the control plane; past it, ``ControlPlaneLostError``."""
        try:
            result = operation()
        except CONTROL_ERRORS as error:
            now = time.monotonic()
            if self.control_down_since is None:
                self.control_down_since = now
            down = now - self.control_down_since
            if down > self.settings.peer_timeout_seconds:
                raise ControlPlaneLostError(
                    f"Redis unreachable for {down:.0f} s: {error}"
                ) from None
            return UNREACHABLE
        self.control_down_since = None
        return result

    def check_flags(self) -> None:
        if STOP.is_set():  # a local flag (worker.stopping): no round trip
            self._handing_back(self.stop.worker_stopping)
        self.flags_checked_at = time.monotonic()
        flags = self.control(
            lambda: self.store.redis.mget(
                cancel_key(self.job_id),
                attempt_key(self.job_id, self.attempt, "abort"),
                stop_key(self.job_id, self.attempt),
            )
        )
        if flags is UNREACHABLE:
            return
        cancel, abort, stop_at = flags
        if abort is not None:
            raise AttemptAbortedError(abort.decode())
        if cancel is not None:
            raise JobCancelledError("cancel requested")
        self._handing_back(lambda: self.stop.learn(stop_at))

    def _handing_back(self, check) -> None:
        """``check()``; when it raises WorkerStoppingError (stop now, unsaved), requeue the
        attempt uncounted first (``on_stopping``)."""
        try:
            check()
        except WorkerStoppingError:
            self.hand_back()
            raise

    def hand_back(self) -> None:
        """Requeue the attempt uncounted (``on_stopping``; tests without a runner have none)."""
        if self.on_stopping is not None:
            self.on_stopping()

    def check_while_waiting(self) -> None:
        redis, job, attempt = self.store.redis, self.job_id, self.attempt
        checked = self.control(
            lambda: check_attempt(redis, job, attempt, self.num_shards, self.shard)
        )
        if checked is not UNREACHABLE:
            self.check_flags()

    def agree_on_start(self, step: int) -> None:
        """Check that every shard of the attempt starts at global step ``step``, in one tiny
        allreduce (each shard fills its own slot); ResumeMismatchError if not. Only the current
        attempt publishes checkpoints (worker.fence), so they should always agree; if they did
        not, each step would exchange gradients of different batches and the weights would be
        silently wrong, where a restart reloads one checkpoint for all."""
        if self.num_shards == 1:
            return
        slots = np.zeros(self.num_shards)
        slots[self.shard] = step
        summed = self.allreduce("start", slots, [1.0] * self.num_shards) * self.num_shards
        steps = [round(value) for value in summed]  # steps are integers far below 2**53
        if len(set(steps)) > 1:
            raise ResumeMismatchError(steps)

    def allreduce(self, name: str, vector: np.ndarray, weights, idle=None) -> np.ndarray:
        """``allreduce_mean`` with this shard's deadline and checks; the time ``idle()`` takes
        (see allreduce_mean) is not counted as communication."""
        started, idle_seconds = time.perf_counter(), 0.0
        if idle is not None:
            work = idle

            def idle() -> None:
                nonlocal idle_seconds
                idle_started = time.perf_counter()
                work()
                idle_seconds = time.perf_counter() - idle_started

        out = allreduce_mean(
            self.data,
            self.key(name),
            vector,
            weights,
            self.shard,
            timeout=self.settings.peer_timeout_seconds,
            check=self.check_while_waiting,
            shm=self.shm,
            idle=idle,
            mesh=self.mesh,
        )
        if self.num_shards > 1:  # one shard exchanges nothing: its "mean" is local arithmetic
            self.comm_seconds += time.perf_counter() - started - idle_seconds
        return out

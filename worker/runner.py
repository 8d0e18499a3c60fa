"""The life of one shard task: lease, gang start, training, and what each way of ending means.

- finished: shard 0 already marked the job ``succeeded``;
- cancel flag seen: the job becomes ``cancelled`` (its last checkpoint, if it has one, is kept for a
  resume, the older ones are removed; a failed job likewise); the reason says which;
- a peer died, timed out or its connection broke, or the shards resumed from different
  checkpoints: the attempt is abandoned and the job restarts from its checkpoint
  (``restart_job``), or fails once ``max_restarts`` is used up;
- Redis unreachable (a restart): the attempt is abandoned and the job restarts from its checkpoint
  once Redis answers again (the job-state client retries with backoff meanwhile);
- its worker is being stopped (SIGTERM, ``worker.stopping``): the shards stop at one step, shard 0
  saves it (``worker.planned_stop``) and the job is requeued from that checkpoint without
  counting a restart (nothing failed); a
  shard still waiting for its gang gives its place back and re-sends its task;
- any other error (NaN loss, a bad shape, no common transport): the job fails with the message; the
  worker stays healthy.
Whatever the ending, this shard's shared-memory segment is unlinked, and once the job is finished
every segment of it left on this host (by SIGKILLed shard processes) too.
"""

from __future__ import annotations

import logging
import os
import socket

import redis as redis_lib

from worker.collective.allreduce import PeerLinkError, PeerTimeoutError
from worker.collective.shm_transport import remove_job_segments
from worker.collective.transport import attempt_transport
from worker.config import Settings
from worker.fence import AttemptFence
from worker.gang import join_gang
from worker.jobs import TERMINAL, JobStore
from worker.recovery import (
    AttemptAbortedError,
    Heartbeat,
    PeerLostError,
    ResumeMismatchError,
    abort_attempt,
    attempt_key,
    explain_timeout,
    gang_started,
    restart_job,
)
from worker.shard import prepare, train
from worker.shard_context import ControlPlaneLostError, JobCancelledError, ShardContext
from worker.stopping import WorkerStoppingError, stoppable
from worker.storage.checkpoints import checkpoints_key, has_checkpoint
from worker.threads import thread_budget

log = logging.getLogger(__name__)
# a dropped or refused connection: Redis restarting, not a fault of the job
REDIS_OUTAGE = (redis_lib.ConnectionError, redis_lib.TimeoutError)


def run_shard_task(
    store: JobStore,
    data,
    settings: Settings,
    job_id: str,
    shard: int,
    attempt: int,
    requeue,
    enqueue_start,
    step_hook=None,
) -> str:
    """Run shard ``shard`` of ``attempt``; returns how it ended (for logs and tests)."""
    try:
        return _run(
            store, data, settings, job_id, shard, attempt, requeue, enqueue_start, step_hook
        )
    except REDIS_OUTAGE as error:
        # Raises again if Redis stays away longer than the store client's retries: the task then
        # fails, and the sweep restarts the job once every lease has expired.
        log.warning(
            "job %s shard %d: Redis unreachable (%s); restarting the job", job_id, shard, error
        )
        reason = f"Redis was unreachable ({type(error).__name__}: {error})"
        restart_job(store, job_id, attempt, reason, enqueue_start)
        return "restarted"
    finally:
        _remove_segments_if_finished(store, job_id)


def _run(store, data, settings, job_id, shard, attempt, requeue, enqueue_start, step_hook) -> str:
    record = store.get(job_id)
    if record is None or record["status"] in TERMINAL or record["attempt"] != attempt:
        return "stale"
    num_shards = int(record["spec"].get("shards", 1))
    fence = AttemptFence(store, job_id, attempt)  # what this shard writes, it writes through it
    where = f"{socket.gethostname()} pid {os.getpid()}"
    fence.log(f"shard {shard}/{num_shards} attempt {attempt} on {where}", shard)
    if _redelivered(store.redis, job_id, attempt, shard):
        # Celery redelivered the task of a pool process that died mid-attempt. Restart now, before
        # any heartbeat: renewing the dead incarnation's lease would hide its death from the
        # peers, which would then time out instead of naming the dead shard.
        return _restart_for_dead_shard(fence, shard, enqueue_start)
    with stoppable(), Heartbeat(fence, shard, settings):
        try:
            with thread_budget(settings, record["spec"].get("model")):
                replica = prepare(store, job_id, settings)
        except REDIS_OUTAGE:
            raise
        except Exception as error:  # a bad data set or model spec: no point in retrying
            log.exception("job %s shard %d could not prepare", job_id, shard)
            return _fail(fence, shard, error, settings)
        _log_prepared(fence, shard, replica)
        outcome = join_gang(store, job_id, shard, attempt, num_shards, settings, requeue)
        if outcome == "redelivered":  # the gang started while this task prepared
            return _restart_for_dead_shard(fence, shard, enqueue_start)
        if outcome != "start":
            return outcome
        ctx = ShardContext(store, data, job_id, shard, attempt, num_shards, settings, step_hook)
        try:
            ctx.on_stopping = lambda: _hand_back(ctx, enqueue_start)
            with attempt_transport(ctx, replica):
                with thread_budget(settings, record["spec"].get("model")):
                    train(ctx, replica)
            return "finished"
        except WorkerStoppingError:
            return "requeued"
        except JobCancelledError:
            requested = store.cancel_reason(job_id)
            fence.log(f"stopping: {requested or 'cancelled'}", shard)
            abort_attempt(store.redis, job_id, attempt, requested or "cancelled")
            store.transition(
                job_id,
                "cancelled",
                requested or (lambda _: _cancelled_reason(store.redis, job_id)),
                expect_attempt=attempt,
                watch=(checkpoints_key(job_id),),  # a save landing meanwhile changes the answer
            )
            return "cancelled"
        except AttemptAbortedError:
            return "aborted"
        except ControlPlaneLostError as error:
            log.warning("job %s shard %d: %s; attempt abandoned", job_id, shard, error)
            return "control plane lost"  # nothing to write: Redis is where it would go
        except (PeerLostError, PeerTimeoutError, PeerLinkError, ResumeMismatchError) as error:
            if isinstance(error, PeerTimeoutError):
                error = _dead_peer(store, job_id, attempt, error, settings)
            fence.log(f"attempt {attempt} lost: {error}", shard, "warning")
            restart_job(store, job_id, attempt, str(error), enqueue_start)
            return "restarted"
        except REDIS_OUTAGE:
            raise
        except Exception as error:  # training errors fail the job, not the worker
            log.exception("job %s shard %d failed", job_id, shard)
            return _fail(fence, shard, error, settings)


def _hand_back(ctx: ShardContext, enqueue_start) -> None:
    """Requeue the job from its checkpoint, uncounted: a worker of the attempt is stopping.
    Called where the stop is seen or made, before the transport closes (a peer that lost its
    link first would restart the job as for a crash, and count it)."""
    reason = ctx.stop.reason()
    ctx.fence.log(f"handing attempt {ctx.attempt} back: {reason}", ctx.shard, "warning")
    restart_job(ctx.store, ctx.job_id, ctx.attempt, reason, enqueue_start, counted=False)


def _cancelled_reason(redis, job_id: str) -> str:
    """What ``jobs resume`` can do with the cancelled job: says so only if it is true."""
    if has_checkpoint(redis, job_id):
        return "cancelled; the last checkpoint is kept"
    return "cancelled; no checkpoint to resume from"


def _redelivered(redis, job_id: str, attempt: int, shard: int) -> bool:
    """Did this shard already take part in the attempt's started gang (its process died)?"""
    return gang_started(redis, job_id, attempt) and bool(
        redis.sismember(attempt_key(job_id, attempt, "claimed"), str(shard))
    )


def _restart_for_dead_shard(fence: AttemptFence, shard: int, enqueue_start) -> str:
    """Restart the job naming this shard's dead incarnation (no wait for its lease to expire)."""
    store, job_id, attempt = fence.store, fence.job_id, fence.attempt
    seen = store.redis.hget(attempt_key(job_id, attempt, "seen"), str(shard))
    error = PeerLostError(shard, float(seen) if seen else None)
    fence.log(f"redelivered after its process died: {error}", shard)
    restart_job(store, job_id, attempt, str(error), enqueue_start)
    return "restarted"


def _dead_peer(store, job_id, attempt, error: PeerTimeoutError, settings) -> Exception:
    """The timeout, or the death of the peer it waited on when that peer's lease expires."""
    try:
        dead = explain_timeout(store.redis, job_id, attempt, error.missing, settings)
    except redis_lib.RedisError:
        return error
    return dead or error


def _fail(fence: AttemptFence, shard: int, error: Exception, settings: Settings) -> str:
    store, job_id, attempt = fence.store, fence.job_id, fence.attempt
    reason = f"training failed on shard {shard}: {type(error).__name__}: {error}"
    fence.log(reason, shard, "error")
    abort_attempt(store.redis, job_id, attempt, reason)
    store.transition(job_id, "failed", reason, expect_attempt=attempt)  # keeps one checkpoint
    return "failed"


def _log_prepared(fence: AttemptFence, shard: int, replica) -> None:
    data = replica.data
    sizes = [len(a) if a is not None else 0 for a in (data.x_train, data.x_val, data.x_test)]
    fence.log(
        f"data set {data.name or replica.spec['dataset']}: {sizes[0]} training, {sizes[1]}"
        f" validation, {sizes[2]} test samples of shape {list(data.input_shape)}",
        shard,
    )
    fence.log(f"weights from {replica.origin}", shard)


def _remove_segments_if_finished(store: JobStore, job_id: str) -> None:
    try:
        record = store.get(job_id)
    except redis_lib.RedisError:
        return  # Redis is gone: the next restart or the job's end cleans up
    if record is None or record["status"] in TERMINAL:
        remove_job_segments(job_id)

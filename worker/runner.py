"""The life of one shard task: lease, gang start, training, and what each way of ending means.

- finished: shard 0 already marked the job ``succeeded``;
- cancel flag seen: the job becomes ``cancelled`` (its last checkpoint is kept);
- a peer died or timed out: the attempt is abandoned and the job restarts from its checkpoint
  (``restart_job``), or fails once ``max_restarts`` is used up;
- any other error (NaN loss, a bad shape): the job fails with the message; the worker stays healthy.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

from nnlib import parallel as nnlib_parallel
from worker.allreduce import PeerTimeoutError
from worker.config import Settings
from worker.gang import join_gang
from worker.jobs import TERMINAL, JobStore
from worker.recovery import (
    AttemptAbortedError,
    Heartbeat,
    PeerLostError,
    abort_attempt,
    attempt_key,
    restart_job,
)
from worker.shard import JobCancelledError, ShardContext, prepare, train

log = logging.getLogger(__name__)


def blas_threads(settings: Settings) -> int:
    """Threads per process so that pool processes x threads <= cores (1 core left to Redis...)."""
    if settings.blas_threads:
        return settings.blas_threads
    processes = int(os.environ.get("GRADQ_POOL_PROCESSES", "1"))
    return max(1, (os.cpu_count() or 1) // max(processes, 1))


@contextmanager
def thread_budget(settings: Settings):
    """Limit both BLAS and nnlib's own sample-parallel threads to this process's share."""
    threads = blas_threads(settings)
    previous = nnlib_parallel.get_num_threads()
    nnlib_parallel.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        nnlib_parallel.set_num_threads(previous)


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
    record = store.get(job_id)
    if record is None or record["status"] in TERMINAL or record["attempt"] != attempt:
        return "stale"
    num_shards = int(record["spec"].get("shards", 1))
    with Heartbeat(store.redis, job_id, attempt, shard, settings):
        try:
            with thread_budget(settings):
                replica = prepare(store, job_id, settings)
        except Exception as error:  # a bad data set or model spec: no point in retrying
            log.exception("job %s shard %d could not prepare", job_id, shard)
            return _fail(store, job_id, shard, attempt, error)
        outcome = join_gang(store, job_id, shard, attempt, num_shards, settings, requeue)
        if outcome == "redelivered":
            # Celery redelivers the task of a pool process that died: no need to wait for the
            # dead incarnation's lease to expire.
            seen = store.redis.hget(attempt_key(job_id, attempt, "seen"), str(shard))
            error = PeerLostError(shard, float(seen) if seen else None)
            restart_job(store, job_id, attempt, str(error), enqueue_start)
            return "restarted"
        if outcome != "start":
            return outcome
        ctx = ShardContext(store, data, job_id, shard, attempt, num_shards, settings, step_hook)
        try:
            with thread_budget(settings):
                train(ctx, replica)
            return "finished"
        except JobCancelledError:
            reason = "cancelled; the last checkpoint is kept"
            abort_attempt(store.redis, job_id, attempt, reason)
            store.transition(job_id, "cancelled", reason, expect_attempt=attempt)
            return "cancelled"
        except AttemptAbortedError:
            return "aborted"
        except (PeerLostError, PeerTimeoutError) as error:
            log.warning("job %s shard %d: %s", job_id, shard, error)
            restart_job(store, job_id, attempt, str(error), enqueue_start)
            return "restarted"
        except Exception as error:  # training errors fail the job, not the worker
            log.exception("job %s shard %d failed", job_id, shard)
            return _fail(store, job_id, shard, attempt, error)


def _fail(store: JobStore, job_id: str, shard: int, attempt: int, error: Exception) -> str:
    reason = f"training failed on shard {shard}: {type(error).__name__}: {error}"
    abort_attempt(store.redis, job_id, attempt, reason)
    store.transition(job_id, "failed", reason, expect_attempt=attempt)
    return "failed"

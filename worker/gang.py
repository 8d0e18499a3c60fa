"""Gang start: a job's N shard tasks begin step 0 together, or not at all.

A shard task claims its place, then waits (holding a worker slot) until all N have claimed. It
never waits forever:
- the job fails with a clear reason once it has been pending ``max_pending_seconds``;
- it gives its slot back (re-enqueues itself) after ``yield_seconds`` (5 heartbeats) unless its
  job is the oldest pending one. So two jobs that each hold part of the workers cannot deadlock:
  the younger one yields, the oldest one fills up and runs.
- a gang that cannot complete (more shards than the live training workers have slots, from their
  heartbeats in ``worker.worker_registry``, for a worker TTL in a row) holds no slot at all, even
  when it is the oldest: its shards give their slots back and come back ``yield_seconds`` later,
  so jobs that fit run meanwhile. (The API refuses such jobs at submit; this covers workers
  that left afterwards.)
- a shard whose worker is being stopped (SIGTERM, ``worker.stopping``) gives its slot back and
  re-sends its task at once.
"""

from __future__ import annotations

import json
import time

from worker.collective.transport import host_record
from worker.jobs import GANG_PENDING_KEY, TERMINAL, JobStore, job_key
from worker.recovery import (
    ATTEMPT_TTL_SECONDS,
    abort_attempt,
    attempt_key,
    claim,
    gang_started,
    release,
)
from worker.stopping import STOP
from worker.worker_registry import training_slots, worker_ttl

PENDING_KEY = GANG_PENDING_KEY
POLL_SECONDS = 0.05
CAPACITY_CHECK_SECONDS = 1.0


def yield_seconds(settings) -> float:
    """How long a shard of a younger job holds a worker slot while its gang is incomplete."""
    return 5 * settings.heartbeat_seconds


def reserve_after_seconds(settings) -> float:
    """How long a gang that could complete later lets fitting jobs take the slots it waits for."""
    return settings.max_pending_seconds / 2


def mark_pending(store: JobStore, job_id: str, since: float) -> None:
    store.redis.zadd(PENDING_KEY, {job_id: since})


def join_gang(
    store: JobStore, job_id: str, shard: int, attempt: int, num_shards: int, settings, requeue
) -> str:
    """Claim a slot and wait for the gang: returns ``"start"``, ``"yielded"`` or ``"stop"``.

    ``requeue(delay_seconds)`` re-sends this shard's task when it gives its slot back.
    """
    redis = store.redis
    started, count, added = claim(redis, job_id, attempt, shard, num_shards, host_record(settings))
    if started and not added:
        return "redelivered"  # this shard already ran in the started gang: its process died
    if started and count == num_shards and added:
        leave_pending = lambda pipe: pipe.zrem(PENDING_KEY, job_id)  # noqa: E731
        store.transition(job_id, "running", None, expect_attempt=attempt, also=leave_pending)
    waited_since = time.monotonic()
    last_count, capacity_checked = None, 0.0
    while not gang_started(redis, job_id, attempt):
        record = store.get(job_id)
        if record is None or record["status"] in TERMINAL or record["attempt"] != attempt:
            release(redis, job_id, attempt, shard)
            return "stop"
        count = redis.scard(attempt_key(job_id, attempt, "claimed"))
        if count != last_count:
            last_count = count
            store.update(
                job_id,
                {},
                event="status",
                expect_attempt=attempt,
                expect_status="queued",  # the gang may have started meanwhile
                reason=f"waiting for workers: {count} of {num_shards} shards started",
            )
        if STOP.is_set() and release(redis, job_id, attempt, shard):
            # its worker is stopping: the place goes back and the task to the queue, as a yield
            requeue(0)
            return "yielded"
        pending = time.time() - (record.get("pending_since") or time.time())
        if pending > settings.max_pending_seconds:
            reason = (
                f"could not start: only {count} of {num_shards} shards got a worker "
                f"within {settings.max_pending_seconds:g} s"
            )
            abort_attempt(redis, job_id, attempt, reason)
            store.transition(job_id, "failed", reason, expect_attempt=attempt)
            redis.zrem(PENDING_KEY, job_id)
            release(redis, job_id, attempt, shard)
            return "stop"
        now = time.monotonic()
        if now - capacity_checked >= CAPACITY_CHECK_SECONDS:
            capacity_checked = now
            _, slots = training_slots(redis, settings)
            short = _shortfall_seconds(redis, job_id, attempt, 0 < slots < num_shards)
            if short >= worker_ttl(settings) and release(redis, job_id, attempt, shard):
                store.update(
                    job_id,
                    {},
                    event="status",
                    expect_attempt=attempt,
                    expect_status="queued",
                    reason=f"waiting for workers: {count} of {num_shards} shards started, and the "
                    f"live training workers have {slots} slots in all",
                )
                requeue(yield_seconds(settings))
                return "yielded"
            busy = _busy_slots(store, job_id)
            if (
                num_shards <= slots < busy + num_shards  # could complete, but not now
                and pending < reserve_after_seconds(settings)
                and release(redis, job_id, attempt, shard)
            ):
                store.update(
                    job_id,
                    {},
                    event="status",
                    expect_attempt=attempt,
                    expect_status="queued",
                    reason=f"waiting for workers: {busy} of the {slots} slots are busy with "
                    f"running jobs; jobs that fit the rest run first until this one has waited "
                    f"{reserve_after_seconds(settings):g} s",
                )
                requeue(yield_seconds(settings))
                return "yielded"
        if now - waited_since > yield_seconds(settings) and not _oldest_pending(store, job_id):
            if release(redis, job_id, attempt, shard):
                requeue(0)
                return "yielded"
        time.sleep(POLL_SECONDS)
    return "start"


def _shortfall_seconds(redis, job_id: str, attempt: int, short: bool) -> float:
    """For how long the gang's shards have seen too few live slots without a break (0: not now).

    A shortfall counts once it lasted a worker TTL. Right after a control-plane outage every
    worker's heartbeat is stale for a moment; a shard yielding then re-sends its task with a
    countdown, which the worker receiving it holds until due, so both of a gang's tasks could
    end up with one single-slot worker, one running and waiting for the other. The start is kept
    in the attempt's keys: a re-sent shard of a gang that truly cannot complete yields at once.
    """
    key = attempt_key(job_id, attempt, "short-since")
    if not short:
        redis.delete(key)
        return 0.0
    now = time.time()
    redis.set(key, now, nx=True, ex=ATTEMPT_TTL_SECONDS)
    since = redis.get(key)
    return now - float(since) if since is not None else 0.0


def _busy_slots(store: JobStore, job_id: str) -> int:
    """Worker slots held by the shards of running jobs other than ``job_id``."""
    others = [other for other in store.active_ids() if other != job_id]
    busy = 0
    for raw in store.redis.mget([job_key(other) for other in others]) if others else []:
        record = json.loads(raw) if raw is not None else None
        if record is not None and record["status"] in ("running", "cancelling"):
            busy += int(record["spec"].get("shards", 1))
    return busy


def _oldest_pending(store: JobStore, job_id: str) -> bool:
    """Is ``job_id`` the oldest job still forming its gang? (drops finished jobs on the way)"""
    while True:
        head = store.redis.zrange(PENDING_KEY, 0, 0)
        if not head:
            return True
        head_id = head[0].decode()
        if head_id == job_id:
            return True
        record = store.get(head_id)
        if record is not None and record["status"] == "queued":
            return False
        store.redis.zrem(PENDING_KEY, head_id)

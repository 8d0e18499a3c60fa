"""Lost tasks: a queued job's ``start_job`` or ``train_shard`` message vanished with its worker.

A worker SIGKILLed as a whole (main process and pool) takes the messages it had reserved but not
started with it: with ``acks_late`` they stay unacknowledged in the broker until its visibility
timeout (hours, since running training tasks are unacknowledged too), and ``start_job`` launches an
attempt only once. Such a shard has no lease (its task never heartbeat), so ``dead_holders`` cannot
see it either. A shard of a queued job is accounted for when any of these holds:
- its lease is alive (its task runs: preparing or waiting for its gang);
- its ``deferred:{shard}`` mark is alive (it yielded its slot with a countdown: the ETA message sits
  in some worker's memory until due, invisible in the broker; the mark outlives the countdown by a
  few worker TTLs);
- its message waits in the broker's training queue list (no worker free yet: never restarted).
An attempt with a shard unaccounted for (and a worker process that was live at its launch now
dead: a live worker loses no message; it may hold an ETA message due but waiting behind a busy
slot for as long as that slot's job runs), continuously for a grace period (two worker TTLs, so a
message between its pop by a worker and its task's first heartbeat is not taken for lost), is lost.
Likewise an attempt never launched whose ``start_job`` message is not in the control queue: its
``start_job`` is sent again (harmless even if misjudged: it launches an attempt once).
"""

from __future__ import annotations

import base64
import json
import time

import redis as redis_lib

from worker.celery_app import CONTROL_QUEUE, TRAINING_QUEUE
from worker.config import Settings
from worker.recovery import ATTEMPT_TTL_SECONDS, attempt_key
from worker.worker_registry import INCARNATIONS_KEY, worker_ttl

TRAIN_SHARD_TASK = "worker.tasks.train_shard"
START_JOB_TASK = "worker.tasks.start_job"
# Kombu's Redis transport keeps a queue as a list named after it, and priority p > 0 in list
# "<queue>\x06\x16<p>" (kombu.transport.redis: Channel.sep, PRIORITY_STEPS); gradq sets no
# priority, but a message there would still be waiting
PRIORITY_SEP = "\x06\x16"


def lost_grace_seconds(settings: Settings) -> float:
    return 2 * worker_ttl(settings)


def launched_at(raw: bytes | None, now: float) -> float | None:
    """The launch time stored in an attempt's ``launched`` key (None: not launched). Keys written
    before it held a time hold ``1``: read as ``now`` (the grace starts at the first sweep)."""
    if raw is None:
        return None
    value = float(raw)
    return now if value < 1e9 else value


def mark_deferred(
    redis: redis_lib.Redis, job_id: str, attempt: int, shard: int, delay: float, settings: Settings
) -> None:
    """Before a shard re-sends its task with ``countdown=delay``: keep the sweep off it until the
    countdown is past plus the grace (a worker that dies holding the ETA message loses it)."""
    ttl = delay + 3 * worker_ttl(settings)
    redis.set(attempt_key(job_id, attempt, f"deferred:{shard}"), time.time(), px=int(ttl * 1000))


def queued_task_args(redis: redis_lib.Redis, queue: str, task: str) -> list[list]:
    """The args of the ``task`` messages waiting in the broker's lists for ``queue``."""
    found = []
    for name in [queue] + [f"{queue}{PRIORITY_SEP}{p}" for p in (3, 6, 9)]:
        for raw in redis.lrange(name, 0, -1):
            try:
                message = json.loads(raw)
                if message.get("headers", {}).get("task") != task:
                    continue
                found.append(json.loads(base64.b64decode(message["body"]))[0])
            except (ValueError, KeyError, TypeError, IndexError):
                continue  # not a Celery protocol-2 JSON message: not one of ours
    return found


def waiting_shards(redis: redis_lib.Redis, job_id: str, attempt: int) -> set[int]:
    """Shards of ``attempt`` whose ``train_shard`` message waits in the training queue lists."""
    return {
        int(args[1])
        for args in queued_task_args(redis, TRAINING_QUEUE, TRAIN_SHARD_TASK)
        if len(args) == 3 and args[0] == job_id and args[2] == attempt
    }


def lost_launch(redis: redis_lib.Redis, job_id: str, attempt: int, settings: Settings) -> bool:
    """Was the ``start_job`` of a queued job's ``attempt`` lost with its worker? (not launched,
    and no ``start_job`` message for it in the control queue, for a whole grace period). Sending
    it again is safe: ``start_job`` launches an attempt once."""
    launched = redis.exists(attempt_key(job_id, attempt, "launched"))
    waiting = launched or any(
        args == [job_id] for args in queued_task_args(redis, CONTROL_QUEUE, START_JOB_TASK)
    )
    since_key = attempt_key(job_id, attempt, "unlaunched-since")
    return _unaccounted_for(redis, since_key, not waiting, 0.0, settings)


def _unaccounted_for(redis, key: str, missing: bool, since: float, settings: Settings) -> bool:
    """Has ``missing`` held at every call for a grace period (counted from ``since`` at the
    earliest)? The first call that sees it records when, in ``key``; one that does not clears it."""
    if not missing:
        redis.delete(key)
        return False
    now = time.time()
    redis.set(key, now, nx=True, ex=ATTEMPT_TTL_SECONDS)
    first = max(float(redis.get(key) or now), since)
    if now - first > lost_grace_seconds(settings):
        redis.delete(key)  # acted on: a second action needs a new grace period
        return True
    return False


def lost_shards(
    redis: redis_lib.Redis, job_id: str, attempt: int, num_shards: int, settings: Settings
) -> list[int]:
    """Shards of a queued job's ``attempt`` lost with their worker (empty: none, or not yet sure).

    Keeps ``unaccounted-since`` in the attempt's keys: a shard must stay unaccounted for a whole
    grace period, across sweeps, before the attempt counts as lost.
    """
    launched = launched_at(redis.get(attempt_key(job_id, attempt, "launched")), time.time())
    if launched is None:
        return []  # start_job has not run for this attempt yet
    names = [f"lease:{shard}" for shard in range(num_shards)]
    names += [f"deferred:{shard}" for shard in range(num_shards)]
    marks = redis.mget([attempt_key(job_id, attempt, name) for name in names])
    missing = [s for s in range(num_shards) if marks[s] is None and marks[num_shards + s] is None]
    if missing:
        missing = sorted(set(missing) - waiting_shards(redis, job_id, attempt))
    if missing and not _worker_died_since(redis, launched, settings):
        # its message sits in a live worker's memory (say an ETA message due but waiting behind
        # a busy slot): only a worker's death loses a message
        missing = []
    since_key = attempt_key(job_id, attempt, "unaccounted-since")
    return missing if _unaccounted_for(redis, since_key, bool(missing), launched, settings) else []


def _worker_died_since(redis: redis_lib.Redis, sent: float, settings: Settings) -> bool:
    """Did a worker process that was live at ``sent`` (beat within a TTL of it) die since?"""
    ttl = worker_ttl(settings)
    return redis.zcount(INCARNATIONS_KEY, sent - ttl, time.time() - ttl) > 0

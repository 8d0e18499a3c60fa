"""Thin Celery tasks: they take ids and call into the worker modules."""

from __future__ import annotations

import time
from functools import lru_cache

import redis as redis_lib

from worker import signals  # noqa: F401  (worker_ready: the recovery sweep)
from worker.celery_app import app
from worker.collective.allreduce import data_client
from worker.config import get_settings
from worker.gang import mark_pending
from worker.jobs import TERMINAL, JobStore
from worker.lost_tasks import mark_deferred
from worker.recovery import ATTEMPT_TTL_SECONDS, attempt_key
from worker.redis_client import WORKER_TIMEOUTS, connect
from worker.runner import run_shard_task

REDIS_TIMEOUTS = WORKER_TIMEOUTS  # so shards tolerate a control-plane outage (ShardContext.control)


@lru_cache(maxsize=1)
def _redis() -> redis_lib.Redis:
    # retries with backoff ride out a Redis restart; the timeouts bound each try
    return connect(get_settings().redis_url, **REDIS_TIMEOUTS)


@lru_cache(maxsize=1)
def _data() -> redis_lib.Redis:
    return data_client(get_settings().redis_url, **REDIS_TIMEOUTS)


@app.task(name="worker.tasks.ping", ignore_result=False)
def ping(value: str) -> str:
    """Echo ``value``: lets tests and ``/readyz`` prove a worker is consuming."""
    return value


@app.task(name="worker.tasks.start_job")
def start_job(job_id: str) -> str:
    """Launch the N shard tasks of the job's current attempt (once per attempt)."""
    store = JobStore(_redis())
    record = store.get(job_id)
    if record is None or record["status"] in TERMINAL:
        return "nothing to start"
    attempt = record["attempt"]
    if not store.redis.set(
        attempt_key(job_id, attempt, "launched"), time.time(), nx=True, ex=ATTEMPT_TTL_SECONDS
    ):
        return "already launched"
    shards = int(record["spec"].get("shards", 1))
    since = record.get("pending_since") or time.time()
    store.update(
        job_id,
        {"pending_since": since},
        event="status",
        expect_attempt=attempt,
        reason=f"waiting for {shards} shard worker(s)",
    )
    mark_pending(store, job_id, since)
    for shard in range(shards):
        train_shard.delay(job_id, shard, attempt)
    return f"launched {shards} shard(s) of attempt {attempt}"


@app.task(name="worker.tasks.train_shard")
def train_shard(job_id: str, shard: int, attempt: int) -> str:
    """One long-lived shard of a job: gang start, then train until the job ends."""
    return run_shard_task(
        JobStore(_redis()),
        _data(),
        get_settings(),
        job_id,
        shard,
        attempt,
        requeue=lambda delay: _requeue_shard(job_id, shard, attempt, delay),
        enqueue_start=start_job.delay,
    )


def _requeue_shard(job_id: str, shard: int, attempt: int, delay: float) -> None:
    """Re-send a shard's task; one sent with a countdown is marked deferred first, since its
    ETA message waits in a worker's memory, where the lost-task sweep cannot see it."""
    if delay > 0:
        mark_deferred(_redis(), job_id, attempt, shard, delay, get_settings())
    train_shard.apply_async((job_id, shard, attempt), countdown=delay)

"""The recovery sweep: a daemon thread in every worker's main process (one at a time, by a lock)
that looks at every active job and acts on what the leases say (``worker.recovery``):
- restarts running jobs whose ``alive`` key expired (every worker died);
- restarts queued jobs whose shard died while it prepared or waited for its gang (a ``holding``
  member without a lease), or whose task was lost unstarted with its worker
  (``worker.lost_tasks``);
- fails queued jobs that waited past their gang deadline.
"""

from __future__ import annotations

import threading
import time

import redis as redis_lib

from worker.config import Settings
from worker.job_logs import job_log
from worker.jobs import JobStore
from worker.lost_tasks import lost_launch, lost_shards
from worker.recovery import abort_attempt, alive_key, attempt_key, restart_job


def sweep(store: JobStore, settings: Settings, enqueue) -> list[str]:
    """Restart running jobs nobody heartbeats for; fail queued jobs past their gang deadline.

    Returns the ids acted on. Safe to run concurrently: every action is guarded by the attempt.
    """
    acted = []
    now = time.time()
    for job_id in store.active_ids():
        record = store.get(job_id)
        if record is None:
            store.redis.srem("gradq:jobs:active", job_id)
            continue
        attempt = record["attempt"]
        if record["status"] == "queued" and (dead := dead_holders(store.redis, job_id, attempt)):
            # Its task died with its worker: Celery redelivers a task only when the pool child
            # dies, not the whole worker (the message waits out the broker's visibility timeout,
            # hours), and the attempt's launch is done once. Waiting for the gang deadline
            # would idle the job (and any peer holding a slot for it) for max_pending_seconds.
            shards = ", ".join(str(shard) for shard in dead)
            reason = f"shard {shards} of attempt {attempt} died before training started"
            if restart_job(store, job_id, attempt, reason, enqueue) is not None:
                acted.append(job_id)
            continue
        if record["status"] == "queued" and _launch_lost(store, record, settings):
            job_log(store.redis, job_id, f"the start of attempt {attempt} was lost with its "
                    "worker: sending it again")  # fmt: skip
            enqueue(job_id)
            acted.append(job_id)
            continue
        if record["status"] == "queued" and (lost := _lost(store, record, settings)):
            # its task's message was reserved by a worker killed before starting it (see
            # worker.lost_tasks). Not counted: the job did nothing wrong, and a misjudged
            # case (an ETA message held past its mark) must not use up its restarts.
            shards = ", ".join(str(shard) for shard in lost)
            reason = f"shard task(s) {shards} of attempt {attempt} were lost with their worker"
            if restart_job(store, job_id, attempt, reason, enqueue, counted=False) is not None:
                acted.append(job_id)
            continue
        if store.redis.exists(alive_key(job_id)):
            continue
        if record["status"] in ("running", "cancelling"):
            reason = f"all shards of attempt {attempt} stopped heartbeating (workers restarted?)"
            if restart_job(store, job_id, attempt, reason, enqueue) is not None:
                acted.append(job_id)
        elif record["status"] == "queued":
            since = record.get("pending_since") or now
            # grace beyond the gang's own deadline: a shard that is alive enforces it itself
            if now - since > settings.max_pending_seconds + settings.peer_timeout_seconds:
                reason = (
                    f"could not start: no worker took the job within "
                    f"{settings.max_pending_seconds:g} s"
                )
                abort_attempt(store.redis, job_id, attempt, reason)
                job_log(store.redis, job_id, reason, None, "error")
                if store.transition(job_id, "failed", reason, expect_attempt=attempt):
                    acted.append(job_id)
    return acted


def _launch_lost(store: JobStore, record: dict, settings: Settings) -> bool:

    return lost_launch(store.redis, record["id"], record["attempt"], settings)


def _lost(store: JobStore, record: dict, settings: Settings) -> list[int]:

    shards = int(record["spec"].get("shards", 1))
    return lost_shards(store.redis, record["id"], record["attempt"], shards, settings)


def dead_holders(redis: redis_lib.Redis, job_id: str, attempt: int) -> list[int]:
    """Shards of ``attempt`` whose task is still held (``holding``) but whose lease expired."""
    holders = sorted(int(m) for m in redis.smembers(attempt_key(job_id, attempt, "holding")))
    pipe = redis.pipeline()
    for shard in holders:
        pipe.exists(attempt_key(job_id, attempt, f"lease:{shard}"))
    return [shard for shard, alive in zip(holders, pipe.execute(), strict=True) if not alive]


class Sweeper:
    """A daemon thread in the worker's main process running ``sweep`` (one worker at a time)."""

    def __init__(self, redis: redis_lib.Redis, settings: Settings, enqueue):
        self.store, self.settings, self.enqueue = JobStore(redis), settings, enqueue
        self.period = max(0.5, settings.peer_timeout_seconds / 2)
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="gradq-sweeper").start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                lock = self.store.redis.set(
                    "gradq:sweep:lock", "1", nx=True, px=int(self.period * 900)
                )
                if lock:
                    sweep(self.store, self.settings, self.enqueue)
            except redis_lib.RedisError:
                pass  # Redis restarting: try again next period
            if self._stop.wait(self.period):
                return

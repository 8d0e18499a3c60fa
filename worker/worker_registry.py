"""Live Celery workers and their slots, from heartbeats each worker's main process writes.

Keys:
- ``gradq:workers``        sorted set: node name -> Unix time of its last heartbeat
- ``gradq:workers:info``   hash: node name -> JSON ``{"slots": int, "queues": [...]}``
A worker is live while its last heartbeat is younger than ``worker_ttl(settings)``. Readers (the
API's ``/readyz``, the submit-time shard check, the gang) read these keys: no synchronous ping, so a
busy worker never looks dead and readiness costs one round trip.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass

import redis as redis_lib

from worker.config import Settings

WORKERS_KEY = "gradq:workers"
INFO_KEY = "gradq:workers:info"
# "name#pid" -> last beat: one entry per worker process, so a worker killed and restarted under
# the same name still shows as a death (``worker.lost_tasks``)
INCARNATIONS_KEY = "gradq:workers:incarnations"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveWorker:
    name: str
    slots: int
    queues: tuple[str, ...]


def worker_ttl(settings: Settings) -> float:
    """Seconds without a heartbeat after which a worker counts as gone (3 missed beats, >= 5 s)."""
    return max(5.0, 3 * settings.heartbeat_seconds)


def beat(redis: redis_lib.Redis, name: str, slots: int, queues: list[str]) -> None:
    """Record that worker ``name`` (``slots`` pool processes consuming ``queues``) is alive."""
    pipe = redis.pipeline(transaction=False)
    pipe.zadd(WORKERS_KEY, {name: time.time()})
    pipe.zadd(INCARNATIONS_KEY, {f"{name}#{os.getpid()}": time.time()})
    pipe.hset(INFO_KEY, name, json.dumps({"slots": slots, "queues": sorted(queues)}))
    pipe.execute()


def forget(redis: redis_lib.Redis, name: str) -> None:
    """Remove ``name`` at once (a clean shutdown), instead of letting its heartbeat age out."""
    pipe = redis.pipeline(transaction=False)
    pipe.zrem(WORKERS_KEY, name)
    pipe.zrem(INCARNATIONS_KEY, f"{name}#{os.getpid()}")
    pipe.hdel(INFO_KEY, name)
    pipe.execute()


def live_workers(redis: redis_lib.Redis, settings: Settings, queue: str | None = None):
    """Workers with a recent heartbeat (consuming ``queue``, when given), by name."""
    since = time.time() - worker_ttl(settings)
    names = [n.decode() for n in redis.zrangebyscore(WORKERS_KEY, since, "+inf")]
    if not names:
        return []
    found = []
    for name, raw in zip(names, redis.hmget(INFO_KEY, names), strict=True):
        if raw is None:
            continue
        info = json.loads(raw)
        worker = LiveWorker(name, int(info["slots"]), tuple(info["queues"]))
        if queue is None or queue in worker.queues:
            found.append(worker)
    return found


def training_slots(redis: redis_lib.Redis, settings: Settings) -> tuple[int, int]:
    """(live training workers, their pool processes in all): how many shards can run at once."""
    from worker.celery_app import TRAINING_QUEUE

    workers = live_workers(redis, settings, TRAINING_QUEUE)
    return len(workers), sum(w.slots for w in workers)


class WorkerBeat:
    """A daemon thread in a worker's main process: ``beat`` every ``heartbeat_seconds``.

    Redis errors are swallowed (an outage): the beat resumes when Redis answers again, and the
    entries of workers dead for long are pruned by whoever beats next.
    """

    def __init__(self, redis: redis_lib.Redis, settings: Settings, name: str, slots, queues):
        self.redis, self.settings = redis, settings
        self.name, self.slots, self.queues = name, slots, list(queues)
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="gradq-worker-beat").start()

    def stop(self) -> None:
        self._stop.set()
        try:
            forget(self.redis, self.name)
        except redis_lib.RedisError:
            pass  # it ages out

    def _run(self) -> None:
        while True:
            try:
                beat(self.redis, self.name, self.slots, self.queues)
                stale = time.time() - 100 * worker_ttl(self.settings)
                for name in self.redis.zrangebyscore(WORKERS_KEY, "-inf", stale):
                    forget(self.redis, name.decode())
                self.redis.zremrangebyscore(INCARNATIONS_KEY, "-inf", stale)
            except redis_lib.RedisError as error:
                log.debug("worker heartbeat skipped: %s", error)
            if self._stop.wait(self.settings.heartbeat_seconds):
                return

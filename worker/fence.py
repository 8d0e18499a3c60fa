"""The attempt fence: a shard writes to the job's shared state only while its attempt is current.

A shard cut off from Redis (its host's link down, its process paused) can come back after the job
restarted without it, or finished. Whatever it then tries to write must change nothing: no
checkpoint, progress, loss curve point, log line, model, status or heartbeat of the job. So every
such write commits through ``AttemptFence``: one MULTI/EXEC that WATCHes the job record, entered
after reading that record on the same connection and checking ``jobs.is_current`` (its attempt is
this shard's, and the job has not finished). A restart bumps ``attempt`` in that record; if it
lands between the check and EXEC, Redis discards the writes and the check runs again. The check
and the writes are therefore one atomic step, for every kind of write, in this one place.

Writers (``CheckpointWriter``, ``LossRecorder``, the model's publish) take the fence as their
``commit``/``commit_after`` pair; writers outside any attempt pass ``Unfenced``.
An object a refused writer already uploaded to the artifact store has no record: the collector
removes it after its grace period.
"""

from __future__ import annotations

import json
import logging

import redis as redis_lib

from worker.job_logs import LEVELS, queue_log_line
from worker.jobs import JobStore, is_current, job_key
from worker.json_update import watched_transaction
from worker.recovery import AttemptAbortedError

log = logging.getLogger("gradq.job")


class StaleAttemptError(AttemptAbortedError):
    """The job restarted or finished without this attempt: the write was refused."""


class AttemptFence:
    """Commit writes for ``job_id`` only while ``attempt`` is its current, unfinished attempt."""

    def __init__(self, store: JobStore, job_id: str, attempt: int):
        self.store, self.redis = store, store.redis
        self.job_id, self.attempt = job_id, attempt

    def commit(self, queue) -> list:
        """``queue(pipe)`` queues writes; they commit together, or StaleAttemptError."""
        return self.commit_after((), lambda pipe: queue)

    def commit_after(self, keys, plan) -> list | None:
        """``json_update.watched_transaction`` over the job record and ``keys``, refused with
        StaleAttemptError unless the attempt is current. None: ``plan`` chose to write nothing."""
        record_key = job_key(self.job_id)
        refused = False

        def guarded(pipe):
            nonlocal refused
            raw = pipe.get(record_key)
            refused = not is_current(json.loads(raw) if raw else None, self.attempt)
            return None if refused else plan(pipe)

        done = watched_transaction(self.redis, [record_key, *keys], guarded)
        if refused:
            raise StaleAttemptError(self._stale())
        return done

    def update(self, changes: dict, event: str = "progress", **guarded) -> dict | None:
        """``JobStore.update`` as this attempt (``status``, ``reason``, ``also`` pass through);
        StaleAttemptError when the attempt is not current. None: the status change was refused
        (e.g. cancelling -> running)."""
        updated = self.store.update(
            self.job_id, changes, event=event, expect_attempt=self.attempt, **guarded
        )
        if updated is None and not self.current():
            raise StaleAttemptError(self._stale())
        return updated

    def current(self) -> bool:
        return is_current(self.store.get(self.job_id), self.attempt)

    def log(self, message: str, shard: int | None, level: str = "info") -> None:
        """A line in the job's log (``job_logs``) while the attempt is current; the host's log
        gets it always. Never raises: a log line must not fail a job."""
        log.log(LEVELS[level], "job %s shard %s: %s", self.job_id, shard, message)
        try:
            self.commit(lambda pipe: queue_log_line(pipe, self.job_id, message, shard, level))
        except StaleAttemptError:
            log.info("job %s: line of stale attempt %d not stored", self.job_id, self.attempt)
        except redis_lib.RedisError as error:
            log.warning("job %s: log line not stored (%s)", self.job_id, error)

    def _stale(self) -> str:
        return f"attempt {self.attempt} of job {self.job_id} is no longer current: nothing written"


class Unfenced:
    """Writes committed unconditionally, with ``AttemptFence``'s two methods: for writers that
    belong to no training attempt (the API, tools, tests, benchmarks)."""

    def __init__(self, redis: redis_lib.Redis):
        self.redis = redis

    def commit(self, queue) -> list:
        """``queue(pipe)`` queues writes; they run as one MULTI/EXEC. Returns EXEC's replies."""
        return self.commit_after((), lambda pipe: queue)

    def commit_after(self, keys, plan) -> list | None:
        """``json_update.watched_transaction`` on this client."""
        return watched_transaction(self.redis, keys, plan)

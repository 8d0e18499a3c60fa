"""Study coordinators run as threads of each worker's main process, one lease per study.

Why not a Celery task: a worker runs ``--concurrency`` long-lived shard tasks, so a coordinator
task (or a periodic "tick" task) would queue behind the very trials it must watch and prune; with
``--concurrency 1`` (docker-compose) it would not run until they end. The main process is always
free, and it already hosts the recovery sweeper for the same reason.

Every worker's ``StudyDriver`` looks for running studies; whoever takes a study's lease
(``gradq:study:{id}:lease``, renewed every pass, expiring after ``lease_seconds``) coordinates it
until it ends or the lease is lost. A killed worker's studies are taken over once their leases
expire; ``Coordinator`` derives its state from Redis, so the new owner carries on.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time

import redis as redis_lib

from worker.config import Settings
from worker.jobs import events_key
from worker.recovery import lease_seconds
from worker.studies.coordinator import Coordinator
from worker.studies.store import StudyStore, study_key

log = logging.getLogger(__name__)
SCAN_SECONDS = 0.5
WAIT_SECONDS = 0.5
ERROR_BACKOFF_SECONDS = 2.0
WAKE_JOB_EVENTS = {"epoch", "status"}  # progress events every 0.5 s do not need a pass
WAKE_STUDY_EVENTS = {"patched", "cancel"}
# renew only our own lease: KEYS[1] lease; ARGV token, ttl ms -> 1 if still ours
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class StudyDriver:
    """Finds running studies and runs a coordinator thread for each one whose lease it takes."""

    def __init__(self, redis: redis_lib.Redis, settings: Settings):
        self.redis, self.settings = redis, settings
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.ttl_ms = int(lease_seconds(settings) * 1000)
        self.threads: dict[str, threading.Thread] = {}
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._scan, daemon=True, name="gradq-studies").start()

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self.threads.values()):
            thread.join(5)

    def _scan(self) -> None:
        store = StudyStore(self.redis)
        while not self._stop.is_set():
            try:
                running = store.running_ids()
                for study_id in set(self.threads) - set(running):
                    del self.threads[study_id]  # finished studies: their threads have ended
                for study_id in running:
                    thread = self.threads.get(study_id)
                    if thread is not None and thread.is_alive():
                        continue
                    lease = study_key(study_id, "lease")
                    if self.redis.set(lease, self.token, nx=True, px=self.ttl_ms):
                        thread = threading.Thread(
                            target=self._coordinate, args=(study_id,), daemon=True
                        )
                        self.threads[study_id] = thread
                        thread.start()
            except redis_lib.RedisError:
                pass  # Redis restarting: look again next period
            self._stop.wait(SCAN_SECONDS)

    def _coordinate(self, study_id: str) -> None:
        lease = study_key(study_id, "lease")
        coordinator = Coordinator(self.redis, study_id, self.settings)
        waiter = Waiter(self.redis, study_id)
        log.info("coordinating study %s", study_id)
        try:
            while not self._stop.is_set():
                try:
                    if not self.redis.eval(RENEW, 1, lease, self.token, self.ttl_ms):
                        log.warning("study %s: lease lost; another worker has it", study_id)
                        return
                    if not coordinator.tick():
                        return
                    waiter.wait(coordinator.running_jobs(), WAIT_SECONDS)
                except redis_lib.RedisError as error:
                    log.warning("study %s: Redis error, retrying: %s", study_id, error)
                    self._stop.wait(ERROR_BACKOFF_SECONDS)
                except Exception:  # a bug must not kill the thread silently nor spin
                    log.exception("study %s: coordinator pass failed", study_id)
                    self._stop.wait(ERROR_BACKOFF_SECONDS)
        finally:
            try:
                self.redis.eval(RELEASE, 1, lease, self.token)
            except redis_lib.RedisError:
                pass  # the lease expires by itself


class Waiter:
    """Sleeps until an epoch or status event of a running trial, a PATCH or a cancel arrives
    (or the timeout): pruning reacts to an epoch within a Redis round trip."""

    def __init__(self, redis: redis_lib.Redis, study_id: str):
        self.redis = redis
        self.study_stream = study_key(study_id, "events")
        self.cursors: dict[str, str] = {}  # stream -> last id seen

    def _latest(self, stream: str) -> str:
        entries = self.redis.xrevrange(stream, count=1)
        return entries[0][0].decode() if entries else "0-0"

    def wait(self, job_ids: list[str], timeout: float) -> None:
        streams = {events_key(job_id) for job_id in job_ids}
        for stream in streams - self.cursors.keys():
            self.cursors[stream] = self._latest(stream)
        for stream in set(self.cursors) - streams - {self.study_stream}:
            del self.cursors[stream]
        # the coordinator's own trial events are not news to it
        self.cursors[self.study_stream] = self._latest(self.study_stream)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0.001:
            reply = self.redis.xread(self.cursors, block=max(1, int(left * 1000)), count=50)
            wake = False
            for stream, entries in reply or []:
                name = stream.decode()
                for event_id, fields in entries:
                    self.cursors[name] = event_id.decode()
                    kind = _event_type(fields)
                    wanted = WAKE_STUDY_EVENTS if name == self.study_stream else WAKE_JOB_EVENTS
                    wake = wake or kind in wanted
            if wake or not reply:
                return


def _event_type(fields: dict) -> str | None:
    try:
        return json.loads(fields[b"data"]).get("type")
    except (KeyError, ValueError):
        return None

"""Leases, gang start and restarts: how a job survives dead shards and restarted workers.

Every attempt of a job (``attempt`` in its record, bumped by each restart) has its own keys:
- ``gradq:job:{id}:a{n}:lease:{shard}``  renewed every ``heartbeat_seconds``, expires after
  ``lease_seconds`` (half the peer timeout): a missing lease means the shard's process is gone
- ``gradq:job:{id}:a{n}:seen``           hash shard -> time of its last heartbeat (for the reason)
- ``gradq:job:{id}:a{n}:holding``        shards whose task is in a process now (added by the first
                                          heartbeat, removed when the task returns): a member
                                          without a lease died with its task in hand
- ``gradq:job:{id}:a{n}:claimed/started`` the gang: step 0 begins once all N shards claimed
- ``gradq:job:{id}:a{n}:hosts``          hash shard -> its host record (``collective.transport``),
                                          written at claim, frozen once the gang started
- ``gradq:job:{id}:a{n}:abort``          set when the attempt is abandoned (restart, failure,
                                          cancel), so blocked peers stop at once
``gradq:job:{id}:alive`` is renewed by every shard of any attempt; ``worker.sweep`` reads these
keys to restart jobs whose shards died and to fail jobs that waited too long.
"""

from __future__ import annotations

import threading
import time

import redis as redis_lib

from worker.collective.shm_transport import remove_job_segments
from worker.config import Settings
from worker.job_logs import job_log
from worker.jobs import JobStore, utc_now
from worker.storage.checkpoints import checkpoints_key, has_checkpoint

ATTEMPT_TTL_SECONDS = 24 * 3600

# KEYS: claimed set, started flag, hosts hash; ARGV: shard, num_shards, ttl, host record
# -> {started?, claimed, added?}. The host is written in the same script as the claim, so once the
# gang has started every shard reads the same N host records (the transport decision's input).
CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
local added = redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local n = redis.call('SCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then redis.call('SET', KEYS[2], '1', 'EX', ARGV[3]) end
return {redis.call('EXISTS', KEYS[2]), n, added}
"""
# a shard may give its slot back only while the gang has not started
RELEASE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SREM', KEYS[1], ARGV[1])
return 1
"""


class PeerLostError(RuntimeError):
    """A peer shard's lease expired: its process died."""

    def __init__(self, shard: int, last_seen: float | None):
        when = utc_now(last_seen) if last_seen else "before its first heartbeat"
        super().__init__(f"shard {shard} died (last heartbeat {when})")
        self.shard = shard


class ResumeMismatchError(RuntimeError):
    """The shards of one attempt resumed from different steps (their checkpoint list changed
    while they loaded it): a restart makes them load it again."""

    def __init__(self, steps: list[int]):
        super().__init__(f"the shards resumed from different checkpoints: steps {steps}")
        self.steps = steps


class AttemptAbortedError(RuntimeError):
    """Another shard abandoned this attempt (restart, failure or cancel)."""


def attempt_key(job_id: str, attempt: int, name: str) -> str:
    return f"gradq:job:{job_id}:a{attempt}:{name}"


def alive_key(job_id: str) -> str:
    return f"gradq:job:{job_id}:alive"


def lease_seconds(settings: Settings) -> float:
    """Lease lifetime: well inside ``peer_timeout_seconds`` (so a dead peer is named by its
    expired lease before a step's deadline passes) yet several heartbeats long."""
    return max(2 * settings.heartbeat_seconds, settings.peer_timeout_seconds / 2)


class Heartbeat:
    """A daemon thread renewing this shard's lease (and the job's ``alive`` key) through the
    shard's ``fence`` (``worker.fence.AttemptFence``): a stale attempt renews nothing."""

    def __init__(self, fence, shard: int, settings: Settings):
        self.fence, self.redis, self.shard = fence, fence.redis, shard
        self.job_id, self.attempt = fence.job_id, fence.attempt
        self.period = settings.heartbeat_seconds
        self.ttl_ms = int(lease_seconds(settings) * 1000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="gradq-heartbeat")

    def beat(self) -> None:
        """Renew once; AttemptAbortedError (StaleAttemptError) if the attempt is not current."""
        now = time.time()
        seen = attempt_key(self.job_id, self.attempt, "seen")
        holding = attempt_key(self.job_id, self.attempt, "holding")

        def queue(pipe) -> None:
            pipe.set(attempt_key(self.job_id, self.attempt, f"lease:{self.shard}"), now,
                     px=self.ttl_ms)  # fmt: skip
            pipe.hset(seen, str(self.shard), now)
            pipe.expire(seen, ATTEMPT_TTL_SECONDS)
            pipe.sadd(holding, self.shard)
            pipe.expire(holding, ATTEMPT_TTL_SECONDS)
            pipe.set(alive_key(self.job_id), now, px=self.ttl_ms)

        self.fence.commit(queue)

    def __enter__(self) -> Heartbeat:
        try:
            self.beat()
        except AttemptAbortedError:
            pass  # the job moved on meanwhile: the gang or the first check stops this shard
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        try:
            pipe = self.redis.pipeline()
            pipe.delete(attempt_key(self.job_id, self.attempt, f"lease:{self.shard}"))
            pipe.srem(attempt_key(self.job_id, self.attempt, "holding"), self.shard)
            pipe.execute()
        except redis_lib.RedisError:
            pass  # Redis is out: the lease expires on its own (a queued job may restart once)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.beat()
            except redis_lib.RedisError:
                pass  # a short Redis hiccup: the next beat retries; the lease TTL is the judge
            except AttemptAbortedError:
                return  # the attempt is stale for good: nothing more to renew


def check_attempt(
    redis: redis_lib.Redis, job_id: str, attempt: int, num_shards: int, me: int
) -> None:
    """Raise AttemptAbortedError or PeerLostError; one round trip (called while waiting)."""
    keys = [attempt_key(job_id, attempt, "abort")]
    keys += [attempt_key(job_id, attempt, f"lease:{i}") for i in range(num_shards)]
    abort, *leases = redis.mget(keys)
    if abort is not None:
        raise AttemptAbortedError(abort.decode())
    for shard, lease in enumerate(leases):
        if lease is None and shard != me:
            seen = redis.hget(attempt_key(job_id, attempt, "seen"), str(shard))
            raise PeerLostError(shard, float(seen) if seen else None)


def explain_timeout(
    redis: redis_lib.Redis, job_id: str, attempt: int, missing: list[int], settings: Settings
) -> PeerLostError | None:
    """A PeerLostError when a shard we timed out on turns out dead (its lease expires within one
    lease lifetime), else None. A peer SIGKILLed late in a long wait leaves its lease alive
    when our deadline passes; the reason should say it died, not that it was slow."""
    deadline = time.monotonic() + lease_seconds(settings)
    keys = [attempt_key(job_id, attempt, f"lease:{shard}") for shard in missing]
    while True:
        for shard, lease in zip(missing, redis.mget(keys), strict=True):
            if lease is None:
                seen = redis.hget(attempt_key(job_id, attempt, "seen"), str(shard))
                return PeerLostError(shard, float(seen) if seen else None)
        if time.monotonic() > deadline:
            return None
        time.sleep(min(0.1, settings.heartbeat_seconds))


def abort_attempt(redis: redis_lib.Redis, job_id: str, attempt: int, reason: str) -> None:
    redis.set(attempt_key(job_id, attempt, "abort"), reason, ex=ATTEMPT_TTL_SECONDS, nx=True)


def claim(
    redis: redis_lib.Redis, job_id: str, attempt: int, shard: int, num_shards: int, host: str
) -> tuple[bool, int, bool]:
    """Join the gang, recording ``host`` (this shard's host record): (gang complete?, shards
    claimed so far, newly claimed by this call?)."""
    keys = [attempt_key(job_id, attempt, name) for name in ("claimed", "started", "hosts")]
    started, count, added = redis.eval(
        CLAIM, 3, *keys, shard, num_shards, ATTEMPT_TTL_SECONDS, host
    )
    return bool(started), int(count), bool(added)


def attempt_hosts(redis: redis_lib.Redis, job_id: str, attempt: int) -> dict[int, str]:
    """Shard -> host record of the shards that claimed a place in ``attempt``."""
    raw = redis.hgetall(attempt_key(job_id, attempt, "hosts"))
    return {int(shard): record.decode() for shard, record in raw.items()}


def release(redis: redis_lib.Redis, job_id: str, attempt: int, shard: int) -> bool:
    """Leave a gang that has not started (True), or learn that it just started (False)."""
    keys = [attempt_key(job_id, attempt, "claimed"), attempt_key(job_id, attempt, "started")]
    return bool(redis.eval(RELEASE, 2, *keys, shard))


def gang_started(redis: redis_lib.Redis, job_id: str, attempt: int) -> bool:
    return bool(redis.exists(attempt_key(job_id, attempt, "started")))


def restart_job(
    store: JobStore, job_id: str, attempt: int, reason: str, enqueue, counted: bool = True
) -> dict | None:
    """Abandon ``attempt`` and start the next one from the last checkpoint, or fail the job.

    Only the first caller for an attempt acts (guarded by the record's attempt). ``enqueue(job_id)``
    sends ``start_job``. ``counted=False`` (a worker stopped on purpose, nothing failed) neither
    uses up nor is refused by ``max_restarts``. Returns the new record, or None if someone else
    already acted.
    """
    abort_attempt(store.redis, job_id, attempt, reason)
    record = store.get(job_id)
    if record is None or record["attempt"] != attempt:
        return None
    # segments a SIGKILLed shard leaked on this host (live peers keep their mappings)
    remove_job_segments(job_id, up_to_attempt=attempt)
    max_restarts = record["spec"].get("max_restarts", 3)
    if record["status"] == "cancelling":
        return store.transition(job_id, "cancelled", f"cancelled; {reason}", expect_attempt=attempt)
    if counted and record["restarts"] >= max_restarts:
        job_log(store.redis, job_id, f"{reason}; no restarts left ({max_restarts})", None, "error")
        return store.transition(
            job_id,
            "failed",
            f"{reason}; gave up after {record['restarts']} restart(s)",
            expect_attempt=attempt,
        )
    changes = {
        "attempt": attempt + 1,
        "restarts": record["restarts"] + int(counted),
        "pending_since": time.time(),
    }
    restarting = ""

    def restart_reason(_record) -> str:
        nonlocal restarting  # what the next attempt starts from, decided with the transition
        restarting = restarting_from(store.redis, job_id)
        return f"{restarting}: {reason}"

    updated = store.transition(
        job_id,
        "queued",
        restart_reason,
        changes=changes,
        expect_attempt=attempt,
        watch=(checkpoints_key(job_id),),  # a save landing meanwhile changes the answer
    )
    if updated is not None:
        restarts = f"restart {changes['restarts']} of at most {max_restarts}"
        if not counted:
            restarts = f"not counted as a restart; {changes['restarts']} so far"
        job_log(store.redis, job_id, f"{restarting} ({restarts}): {reason}")
        enqueue(job_id)
    return updated


def restarting_from(redis, job_id: str) -> str:
    """Where a restarted attempt starts, truthfully: with no checkpoint yet it is the start."""
    if has_checkpoint(redis, job_id):
        return "restarting from the last checkpoint"
    return "restarting from the start (no checkpoint yet)"

"""JobStore: the job record in Redis is the source of truth, and every change is an event.

Keys (``{id}`` is ``job_<hex>``):
- ``gradq:job:{id}``            the record, one JSON document
- ``gradq:job:{id}:events``     a stream of changes; a terminal status is always the last entry
- ``gradq:job:{id}:cancel``     the cooperative cancel flag shards check every step
- ``gradq:tenant:{t}:jobs``     sorted set (all scores 0, members ``<created µs>|<id>``) -> newest
                                first by lexicographic order, which gives stable cursors
- ``gradq:jobs:active``         ids of non-terminal jobs, scanned by the recovery sweep
- ``gradq:job:{id}:checkpoints`` (``worker.storage.checkpoints``: the list of the job's checkpoint
                                objects, owner of their records) is deleted when the job succeeds
                                and cut to the newest one when it fails or is cancelled
- ``gradq:gang:pending``        sorted set of jobs forming their gang (``worker.gang``); a job
                                leaves it when it finishes, whatever the way (cancel included)
Status changes are guarded: a terminal record is never changed again.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import UTC, datetime

import redis as redis_lib

from worker.admission import ACTIVE_KEY, create_within_limit
from worker.json_update import update_json
from worker.storage import artifact_store
from worker.storage.checkpoints import checkpoints_key, settle_checkpoints

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
log = logging.getLogger(__name__)
GANG_PENDING_KEY = "gradq:gang:pending"  # job id -> pending_since
EVENTS_MAXLEN = 2000
FINISHED_TTL_SECONDS = 7 * 24 * 3600  # events and cancel flag of a finished job
# A restart sends a running job back to queued while its new gang forms.
TRANSITIONS = {
    "queued": {"queued", "running", "cancelled", "failed"},
    "running": {"running", "queued", "cancelling", "succeeded", "failed", "cancelled"},
    "cancelling": {"cancelling", "cancelled", "failed", "succeeded"},
}


class JobNotFoundError(KeyError):
    """No job with this id."""


class JobFinishedError(Exception):
    """The job already reached a terminal status (cancel of a finished job: HTTP 409)."""

    def __init__(self, job_id: str, status: str):
        super().__init__(f"job {job_id} already finished with status {status!r}")
        self.job_id, self.status = job_id, status


def job_key(job_id: str) -> str:
    return f"gradq:job:{job_id}"


def events_key(job_id: str) -> str:
    return f"gradq:job:{job_id}:events"


def cancel_key(job_id: str) -> str:
    return f"gradq:job:{job_id}:cancel"


def utc_now(timestamp: float | None = None) -> str:
    """An ISO 8601 UTC timestamp with milliseconds (now, or of a Unix ``timestamp``)."""
    moment = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class JobStore:
    """Create, read, list, update and cancel job records (see module docstring for keys)."""

    def __init__(self, redis: redis_lib.Redis):
        self.redis = redis

    def create(
        self,
        spec: dict,
        tenant: str,
        max_active: int | None = None,
        job_id: str | None = None,
        fields: dict | None = None,
    ) -> dict:
        """A new ``queued`` record for ``spec`` (trusted: the API validated it).

        With ``max_active``, raises ``ActiveJobLimitError`` instead when the tenant already has
        that many unfinished jobs (checked and reserved atomically: worker.admission).
        ``job_id`` and extra record ``fields`` (a study trial's ``study_id``/``trial``) are the
        caller's when given.
        """
        job_id = job_id or "job_" + secrets.token_hex(8)
        record = {
            "id": job_id,
            "tenant": tenant,
            "name": spec.get("name"),
            "spec": spec,
            "status": "queued",
            "status_reason": "waiting for a worker to start the job",
            "epoch": 0,
            "step": 0,
            "steps_total": None,
            "progress": 0.0,
            "train_loss": None,
            "history": [],
            "metrics": {},
            "restarts": 0,
            "attempt": 0,
            "model_id": None,
            "created_at": utc_now(),
            "started_at": None,
            "finished_at": None,
            **(fields or {}),
        }
        record["updated_at"] = record["created_at"]
        member = f"{time.time_ns() // 1000:017d}|{job_id}"
        keys = (job_key(job_id), f"gradq:tenant:{tenant}:jobs", ACTIVE_KEY, events_key(job_id))
        event = {"type": "created", **record}
        create_within_limit(self.redis, keys, record, member, event, EVENTS_MAXLEN, max_active)
        return record

    def get(self, job_id: str) -> dict | None:
        raw = self.redis.get(job_key(job_id))
        return json.loads(raw) if raw is not None else None

    def list(
        self,
        tenant: str,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        name: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """A page of the tenant's jobs, newest first (``worker.job_listing.page_jobs``)."""
        from worker.job_listing import page_jobs  # it reads job_key from here: import when used

        return page_jobs(self.redis, tenant, status, limit, cursor, name)

    def update(
        self,
        job_id: str,
        changes: dict,
        event: str = "progress",
        status: str | None = None,
        reason: str | None = None,
        expect_attempt: int | None = None,
        expect_status: str | None = None,
        also=None,
        watch: tuple[str, ...] = (),
    ) -> dict | None:
        """Apply ``changes`` (and a guarded ``status`` change) atomically; publish one event.

        Returns the new record, or None when the job is terminal, the transition is not allowed, or
        ``expect_attempt`` is given and no longer the job's current attempt (a stale shard), or
        ``expect_status`` is given and differs from the current status. ``also(pipe)`` queues
        more writes that commit in the same MULTI/EXEC, or not at all (e.g. the job's model).
        ``reason`` may be a function of the record, read inside the transaction: it sees the
        ``watch`` keys as they are when the change commits (a change to them reruns it).
        """
        more = also
        published: dict = {}  # the event's fields, filled by the attempt that commits

        def change(record: dict) -> dict | None:
            current = record["status"]
            if current in TERMINAL:
                return None
            if status is not None and status not in TRANSITIONS[current]:
                return None
            if expect_attempt is not None and not is_current(record, expect_attempt):
                return None
            if expect_status is not None and current != expect_status:
                return None
            published.clear()
            published.update(changes)
            record.update(changes)
            now = utc_now()
            record["updated_at"] = published["updated_at"] = now
            if status is not None:
                record["status"] = status
                published["status"] = status
                if status == "running" and record["started_at"] is None:
                    record["started_at"] = published["started_at"] = now
                if status in TERMINAL:
                    record["finished_at"] = published["finished_at"] = now
            if reason is not None or status is not None:
                text = reason(record) if callable(reason) else reason
                record["status_reason"] = published["status_reason"] = text
            published.setdefault("status", record["status"])
            return record

        def also(pipe, record: dict) -> None:
            pipe.xadd(events_key(job_id), _event(event, published), maxlen=EVENTS_MAXLEN)
            if record["status"] == "succeeded":
                # nothing resumes a succeeded job: its checkpoints (up to hundreds of MB
                # of optimizer state) go; cancelled and failed jobs keep their newest
                # (``_settle_checkpoints`` below). Their records lose their owner (the
                # list): shard 0 removes the objects at once, the collector if it
                # cannot. The second key is a legacy one.
                pipe.delete(checkpoints_key(job_id), f"gradq:job:{job_id}:checkpoint")
            if record["status"] in TERMINAL:
                pipe.srem(ACTIVE_KEY, job_id)
                pipe.zrem(GANG_PENDING_KEY, job_id)
                pipe.expire(events_key(job_id), FINISHED_TTL_SECONDS)
                pipe.expire(cancel_key(job_id), FINISHED_TTL_SECONDS)
            if more is not None:
                more(pipe)

        missing = JobNotFoundError(job_id)
        record = update_json(self.redis, job_key(job_id), change, also, missing, watch=watch)
        if record is not None and status in ("failed", "cancelled"):
            self._settle_checkpoints(job_id, status)
        return record

    def _settle_checkpoints(self, job_id: str, status: str) -> None:
        """Keep only the newest checkpoint of a job that can be resumed (every way a job fails or
        is cancelled passes here). The status is what matters: if the store is out, the job keeps
        one more checkpoint than the rule says until it is resumed or deleted."""
        try:
            settle_checkpoints(artifact_store(self.redis), job_id, status)
        except Exception:
            log.exception("job %s: could not trim its checkpoints", job_id)

    def transition(
        self,
        job_id: str,
        status: str,
        reason: str | None = None,
        changes: dict | None = None,
        expect_attempt: int | None = None,
        also=None,
        watch: tuple[str, ...] = (),
    ) -> dict | None:
        """A guarded status change published as a ``status`` event (None if refused)."""
        return self.update(
            job_id,
            changes or {},
            event="status",
            status=status,
            reason=reason,
            expect_attempt=expect_attempt,
            also=also,
            watch=watch,
        )

    def request_cancel(self, job_id: str, reason: str | None = None) -> dict:
        """Queued -> cancelled at once; running -> cancelling (shards stop within a step).

        Raises JobNotFoundError, or JobFinishedError when the job already finished. The status
        changes before the flag is raised, so shards never finish the job under our feet.
        ``reason`` (e.g. a study's "pruned at epoch 3") becomes the final ``status_reason``.
        """
        while True:
            record = self.get(job_id)
            if record is None:
                raise JobNotFoundError(job_id)
            if record["status"] in TERMINAL:
                raise JobFinishedError(job_id, record["status"])
            if record["status"] == "cancelling":
                updated = record
            else:
                queued = record["status"] == "queued"
                updated = self.transition(
                    job_id,
                    "cancelled" if queued else "cancelling",
                    reason or ("cancelled before it started" if queued else "cancel requested"),
                )
            if updated is not None:
                flag = reason.encode() if reason else b"1"
                self.redis.set(cancel_key(job_id), flag, ex=FINISHED_TTL_SECONDS)
                return updated
            # the status moved under us (e.g. queued -> running): decide again

    def forget_model(self, job_id: str, model_id: str) -> bool:
        """Clear ``model_id`` from the job's record once that model is deleted (finished records
        change only here); False if the job is gone or names another model."""

        def change(record: dict) -> dict | None:
            if record.get("model_id") != model_id:
                return None
            return record | {"model_id": None, "updated_at": utc_now()}

        return update_json(self.redis, job_key(job_id), change) is not None

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.redis.exists(cancel_key(job_id)))

    def cancel_reason(self, job_id: str) -> str | None:
        """The reason given to ``request_cancel``, if one was."""
        flag = self.redis.get(cancel_key(job_id))
        return flag.decode() if flag not in (None, b"1") else None

    def active_ids(self) -> list[str]:
        """Ids of all non-terminal jobs (for the recovery sweep)."""
        return sorted(member.decode() for member in self.redis.smembers(ACTIVE_KEY))

    def events(
        self, job_id: str, last_id: str = "0", block_ms: int | None = None, count: int = 100
    ) -> list[tuple[str, dict]]:
        """Events after ``last_id`` (``"0"``: from the start), waiting up to ``block_ms`` if none.

        Each event is ``{"type": "created"|"status"|"progress"|"epoch", "status": ..., <changed
        fields>}``; the last event of a finished job is a ``status`` event with the terminal status.
        """
        reply = self.redis.xread({events_key(job_id): last_id}, count=count, block=block_ms)
        out: list[tuple[str, dict]] = []
        for _stream, entries in reply or []:
            for event_id, fields in entries:
                out.append((event_id.decode(), json.loads(fields[b"data"])))
        return out


def is_current(record: dict | None, attempt: int) -> bool:
    """May attempt ``attempt`` still write? Only while it is the job's attempt and the job runs."""
    return record is not None and record["attempt"] == attempt and record["status"] not in TERMINAL


def _event(kind: str, data: dict) -> dict:
    return {"data": json.dumps({"type": kind, **data})}

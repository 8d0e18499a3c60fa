"""StudyStore: the study record in Redis and its events, like JobStore for jobs.

Keys (``{id}`` is ``study_<hex>``):
- ``gradq:study:{id}``           the record, one JSON document (the coordinator writes its
                                  ``trials``/``best_trial`` summary there; the API only reads it)
- ``gradq:study:{id}:events``    a stream of changes; a final ``status`` event is the last entry
- ``gradq:study:{id}:trials``    hash trial number -> job id, written *before* the job is created,
                                  so a restarted coordinator never submits a trial twice
- ``gradq:study:{id}:pruned``    hash trial number -> epoch at which the pruner stopped it
- ``gradq:study:{id}:journal``   Optuna's journal (``worker.studies.journal``)
- ``gradq:tenant:{t}:studies``   sorted set like the jobs one (newest first by member)
- ``gradq:studies:running``      ids of running studies: what the coordinators look for
  (and what deleting a data set watches: ``worker.datasets.in_use``)

A study is created only if the uploaded data sets its trials would train on still exist, checked
in the transaction that stores it (the sets' metadata WATCHed): with ``delete_unless_in_use``
watching ``gradq:studies:running``, a delete and a creation never both succeed on one set.
"""

from __future__ import annotations

import json
import secrets
import time

import redis as redis_lib

from worker.admission import DatasetGoneError
from worker.datasets.store import dataset_key
from worker.jobs import utc_now
from worker.json_update import update_json, watched_transaction

FINAL = frozenset({"succeeded", "failed", "cancelled"})
RUNNING_KEY = "gradq:studies:running"
EVENTS_MAXLEN = 5000
FINISHED_TTL_SECONDS = 7 * 24 * 3600


def study_key(study_id: str, part: str | None = None) -> str:
    return f"gradq:study:{study_id}" + (f":{part}" if part else "")


def datasets_of(study: dict) -> list[str]:
    """Ids of the uploaded data sets a study's trials may train on, sorted: its base spec's
    ``dataset.id`` and the string choices of a ``dataset.id`` dimension of its space."""
    base = ((study.get("base_spec") or {}).get("dataset") or {}).get("id")
    dimension = (study.get("space") or {}).get("dataset.id") or {}
    choices = [c for c in dimension.get("choices") or [] if isinstance(c, str)]
    return sorted({*choices, *([base] if base else [])})


class StudyStore:
    """Create, read, list and update study records; trial bookkeeping for the coordinator."""

    def __init__(self, redis: redis_lib.Redis):
        self.redis = redis

    def create(self, tenant: str, request: dict) -> dict:
        """A new ``running`` study from a validated request (name, base_spec, space, ...).

        Raises DatasetGoneError if an uploaded data set it uses (``datasets_of``) is gone."""
        study_id = "study_" + secrets.token_hex(8)
        record = {
            "id": study_id,
            "tenant": tenant,
            **request,
            "status": "running",
            "status_reason": "waiting for a worker to coordinate the study",
            "cancel_requested": False,
            "trials": [],
            "best_trial": None,
            "counts": {"running": 0, "complete": 0, "pruned": 0, "failed": 0},
            "epochs_total": 0,
            "created_at": utc_now(),
            "finished_at": None,
        }
        member = f"{time.time_ns() // 1000:017d}|{study_id}"
        uses = [dataset_key(dataset_id) for dataset_id in datasets_of(record)]

        def plan(pipe):
            for dataset_id, key in zip(datasets_of(record), uses, strict=True):
                if not pipe.exists(key):
                    raise DatasetGoneError(dataset_id)
            return queue

        def queue(pipe) -> None:
            pipe.set(study_key(study_id), json.dumps(record))
            pipe.zadd(f"gradq:tenant:{tenant}:studies", {member: 0})
            pipe.sadd(RUNNING_KEY, study_id)  # a delete checking the set's users retries
            events = study_key(study_id, "events")
            pipe.xadd(events, _event("created", record), maxlen=EVENTS_MAXLEN)

        watched_transaction(self.redis, uses, plan)
        return record

    def get(self, study_id: str) -> dict | None:
        raw = self.redis.get(study_key(study_id))
        return json.loads(raw) if raw is not None else None

    def list(self, tenant: str, limit: int = 50, cursor: str | None = None):
        """Newest first: ``(records, next_cursor or None)``; ValueError for a foreign cursor."""
        if cursor is not None and "|" not in cursor:
            raise ValueError(cursor)
        key = f"gradq:tenant:{tenant}:studies"
        upper = "(" + cursor if cursor else "+"
        members = self.redis.zrevrangebylex(key, upper, "-", start=0, num=limit + 1)
        page = [m.decode() for m in members[:limit]]
        raws = self.redis.mget([study_key(m.split("|", 1)[1]) for m in page]) if page else []
        records = [json.loads(raw) for raw in raws if raw is not None]
        return records, (page[-1] if len(members) > limit else None)

    def running_ids(self) -> list[str]:
        return sorted(member.decode() for member in self.redis.smembers(RUNNING_KEY))

    def update(self, study_id: str, changes: dict, event: str | None = "status") -> dict | None:
        """Apply ``changes`` atomically unless the study is final (then None); publish the
        changed fields as one ``event`` (None: no event). A final status ends the study."""

        def change(record: dict) -> dict | None:
            if record["status"] in FINAL:
                return None
            record.update(changes)
            if record["status"] in FINAL:
                record["finished_at"] = changes["finished_at"] = utc_now()
            return record

        def also(pipe, record: dict) -> None:
            if event is not None:
                published = {"status": record["status"], **changes}
                pipe.xadd(
                    study_key(study_id, "events"), _event(event, published), maxlen=EVENTS_MAXLEN
                )
            if record["status"] in FINAL:
                pipe.srem(RUNNING_KEY, study_id)
                pipe.expire(study_key(study_id, "events"), FINISHED_TTL_SECONDS)

        return update_json(self.redis, study_key(study_id), change, also)

    def publish(self, study_id: str, kind: str, data: dict) -> str:
        """Append one event (e.g. a ``trial`` change); returns its stream id."""
        event_id = self.redis.xadd(
            study_key(study_id, "events"), _event(kind, data), maxlen=EVENTS_MAXLEN
        )
        return event_id.decode()

    def events(
        self, study_id: str, last_id: str = "0", block_ms: int | None = None, count: int = 100
    ) -> list[tuple[str, dict]]:
        """Events after ``last_id`` (same shape and use as ``JobStore.events``)."""
        reply = self.redis.xread(
            {study_key(study_id, "events"): last_id}, count=count, block=block_ms
        )
        return [
            (event_id.decode(), json.loads(fields[b"data"]))
            for _stream, entries in reply or []
            for event_id, fields in entries
        ]

    # trial bookkeeping (the coordinator's)
    def reserve_job_id(self, study_id: str, trial: int) -> str:
        """The job id of ``trial``: a new one on the first call, the same one ever after."""
        key = study_key(study_id, "trials")
        self.redis.hsetnx(key, str(trial), "job_" + secrets.token_hex(8))
        return self.redis.hget(key, str(trial)).decode()

    def trial_jobs(self, study_id: str) -> dict[int, str]:
        raw = self.redis.hgetall(study_key(study_id, "trials"))
        return {int(trial): job_id.decode() for trial, job_id in raw.items()}

    def mark_pruned(self, study_id: str, trial: int, epoch: int) -> None:
        self.redis.hsetnx(study_key(study_id, "pruned"), str(trial), epoch)

    def unmark_pruned(self, study_id: str, trial: int) -> None:
        self.redis.hdel(study_key(study_id, "pruned"), str(trial))

    def pruned(self, study_id: str) -> dict[int, int]:
        raw = self.redis.hgetall(study_key(study_id, "pruned"))
        return {int(trial): int(epoch) for trial, epoch in raw.items()}


def _event(kind: str, data: dict) -> dict:
    return {"data": json.dumps({"type": kind, **data})}

"""A data set is not deleted while an unfinished job trains on it, whatever the timing.

Checking the jobs and then deleting is a race: a job admitted in between would start on a set
that is gone. Both sides are made atomic instead:
- admission (``worker.admission``) checks the set's metadata exists in the same Lua step that
  creates the job, so a job is never created after the delete committed;
- ``delete_unless_in_use`` WATCHes the metadata and ``gradq:jobs:active``, which every job
  creation and resume changes, so a job admitted after its check makes it check again.
"""

from __future__ import annotations

import json

import redis as redis_lib

from worker.datasets.store import DatasetStore, as_text, dataset_key, decode_info
from worker.jobs import ACTIVE_KEY, TERMINAL, job_key


class DatasetInUseError(Exception):
    """Unfinished jobs train on the set (HTTP 409); ``jobs`` are (job id, status) pairs."""

    def __init__(self, dataset_id: str, jobs: list[tuple[str, str]]):
        named = ", ".join(f"{job_id} ({status})" for job_id, status in jobs)
        super().__init__(f"dataset_id: data set {dataset_id} is used by unfinished jobs: {named}")
        self.dataset_id, self.jobs = dataset_id, jobs


def jobs_using(redis: redis_lib.Redis, dataset_id: str) -> list[tuple[str, str]]:
    """(id, status) of the queued, running and cancelling jobs whose spec names ``dataset_id``,
    sorted by id. Reads every unfinished job's record (one MGET), not the tenant's history."""
    ids = sorted(as_text(member) for member in redis.smembers(ACTIVE_KEY))
    raws = redis.mget([job_key(job_id) for job_id in ids]) if ids else []
    users = []
    for job_id, raw in zip(ids, raws, strict=True):
        if raw is None or dataset_id not in as_text(raw):  # most jobs: no parsing
            continue
        record = json.loads(raw)
        used = ((record.get("spec") or {}).get("dataset") or {}).get("id")
        if used == dataset_id and record["status"] not in TERMINAL:
            users.append((job_id, record["status"]))
    return users


def delete_unless_in_use(store: DatasetStore, dataset_id: str) -> bool:
    """Delete the set unless an unfinished job uses it; False if there is no such set.

    Raises DatasetInUseError naming the jobs. Retries when a job is created, resumed or
    finishes between its check and its commit (the WATCH on ``gradq:jobs:active`` fires).
    """
    with store.redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(dataset_key(dataset_id), ACTIVE_KEY)
                fields = pipe.hgetall(dataset_key(dataset_id))
                if not fields:
                    return False
                users = jobs_using(pipe, dataset_id)
                if users:
                    raise DatasetInUseError(dataset_id, users)
                info = decode_info(fields)
                pipe.multi()
                store.forget(pipe, info)
                pipe.execute()
                break
            except redis_lib.WatchError:
                continue
    store.delete_arrays(info)
    return True

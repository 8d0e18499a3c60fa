"""A data set is not deleted while an unfinished job or study uses it, whatever the timing.

Checking the jobs and then deleting is a race: a job admitted in between would start on a set
that is gone. Both sides are made atomic instead:
- admission (``worker.admission``) checks the set's metadata exists in the same Lua step that
  creates the job, so a job is never created after the delete committed;
- ``delete_unless_in_use`` WATCHes the metadata and ``gradq:jobs:active``, which every job
  creation and resume changes, so a job admitted after its check makes it check again.

Running studies are held to the same rule (their remaining trials would fail at once): the
delete also WATCHes ``gradq:studies:running``, which every study creation writes, and
``StudyStore.create`` checks the set exists in the transaction that stores the study.
"""

from __future__ import annotations

import json

import redis as redis_lib

from worker.datasets.store import DatasetStore, as_text, dataset_key, decode_info
from worker.jobs import ACTIVE_KEY, TERMINAL, job_key
from worker.studies.store import FINAL, RUNNING_KEY, datasets_of, study_key


class DatasetInUseError(Exception):
    """Unfinished jobs or studies use the set (HTTP 409); ``jobs`` are (job id, status) pairs,
    ``studies`` the ids of the running studies."""

    def __init__(
        self, dataset_id: str, jobs: list[tuple[str, str]], studies: list[str] | None = None
    ):
        users = []
        if jobs:
            named = ", ".join(f"{job_id} ({status})" for job_id, status in jobs)
            users.append(f"unfinished jobs: {named}")
        if studies:
            users.append(f"running studies: {', '.join(studies)}")
        super().__init__(f"dataset_id: data set {dataset_id} is used by {'; '.join(users)}")
        self.dataset_id, self.jobs, self.studies = dataset_id, jobs, studies or []


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


def studies_using(redis: redis_lib.Redis, dataset_id: str) -> list[str]:
    """Sorted ids of the unfinished studies whose trials may train on ``dataset_id``
    (``datasets_of``: the base spec's set, or a choice of a ``dataset.id`` dimension)."""
    ids = sorted(as_text(member) for member in redis.smembers(RUNNING_KEY))
    raws = redis.mget([study_key(study_id) for study_id in ids]) if ids else []
    users = []
    for study_id, raw in zip(ids, raws, strict=True):
        if raw is None or dataset_id not in as_text(raw):
            continue
        record = json.loads(raw)
        if record["status"] not in FINAL and dataset_id in datasets_of(record):
            users.append(study_id)
    return users


def delete_unless_in_use(store: DatasetStore, dataset_id: str) -> bool:
    """Delete the set unless an unfinished job or study uses it; False if there is no such set.

    Raises DatasetInUseError naming the jobs and studies. Retries when a job is created, resumed
    or finishes, or a study is created or finishes, between its check and its commit (the WATCH
    on ``gradq:jobs:active`` or ``gradq:studies:running`` fires).
    """
    with store.redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(dataset_key(dataset_id), ACTIVE_KEY, RUNNING_KEY)
                fields = pipe.hgetall(dataset_key(dataset_id))
                if not fields:
                    return False
                users, studies = jobs_using(pipe, dataset_id), studies_using(pipe, dataset_id)
                if users or studies:
                    raise DatasetInUseError(dataset_id, users, studies)
                info = decode_info(fields)
                pipe.multi()
                store.forget(pipe, info)
                pipe.execute()
                break
            except redis_lib.WatchError:
                continue
    store.delete_arrays(info)
    return True

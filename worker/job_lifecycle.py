"""After a job ends: delete it with everything it left behind, or resume it from its checkpoint.

``delete_job`` removes the record and every key under its prefix (events, logs, loss curve,
checkpoints, cancel flag, per-attempt keys); the model stays unless asked. ``reopen_job`` turns a
cancelled or failed job back into a queued one with a fresh attempt, so ``start_job`` launches
shards that load the last checkpoint; with the same total epochs, the weights end equal to those
of an uninterrupted run.

A resumed job is active again, so it is admitted against the tenant's active-job limit like a
submission (``worker.admission``): the count and the re-queue commit together, under WATCH of the
tenant's active index, which every admission and resume of that tenant writes.
"""

from __future__ import annotations

import time

from worker.admission import (
    ActiveJobLimitError,
    DatasetGoneError,
    active_jobs,
    ensure_indexed,
    tenant_active_key,
)
from worker.datasets.store import dataset_key
from worker.job_logs import job_log
from worker.jobs import (
    ACTIVE_KEY,
    TERMINAL,
    JobNotFoundError,
    JobStore,
    _event,
    cancel_key,
    events_key,
    job_key,
)
from worker.json_update import update_json
from worker.models_store import ModelStore
from worker.storage import ArtifactStore, artifact_store
from worker.storage.checkpoints import (
    checkpoints_key,
    has_checkpoint,
    keep_checkpoints,
    load_checkpoint_meta,
)

RESUMABLE = ("cancelled", "failed")


def can_resume(redis, record: dict) -> bool:
    """Would ``reopen_job`` accept this job now, as far as the job itself goes: cancelled or
    failed, with a checkpoint to start from (the dashboard offers Resume only then; the data set
    and the tenant's active-job limit are checked when it is clicked)."""
    return record.get("status") in RESUMABLE and has_checkpoint(redis, record["id"])


class JobActiveError(Exception):
    """The job has not finished (delete) or is not cancelled/failed (resume): HTTP 409."""


class NoCheckpointError(Exception):
    """Nothing to resume from: the job never wrote a checkpoint (or it expired)."""


def delete_job(
    store: JobStore,
    job_id: str,
    delete_model: bool = False,
    artifacts: ArtifactStore | None = None,
) -> str | None:
    """Remove a finished job and its traces; returns the id of the model deleted with it, if any.

    Raises JobNotFoundError, or JobActiveError while the job is queued or running.
    """
    record = store.get(job_id)
    if record is None:
        raise JobNotFoundError(job_id)
    if record["status"] not in TERMINAL:
        raise JobActiveError(f"job {job_id} is {record['status']}; cancel it first")
    redis = store.redis
    tenant_key = f"gradq:tenant:{record['tenant']}:jobs"
    members = [m for m, _ in redis.zscan_iter(tenant_key, match=f"*|{job_id}")]
    # every key under the job's prefix (events, logs, loss curve, cancel flag, per-attempt keys,
    # and any a later version adds): a job id is checked hex, so it holds no glob characters.
    # The checkpoint list stays for keep_checkpoints, which deletes the objects it names.
    owned = [
        key
        for key in redis.scan_iter(match=f"gradq:job:{job_id}:*", count=1000)
        if key.decode() != checkpoints_key(job_id)
    ]
    pipe = redis.pipeline()
    pipe.delete(job_key(job_id), *owned)
    if members:
        pipe.zrem(tenant_key, *members)
    pipe.srem(ACTIVE_KEY, job_id)
    pipe.execute()
    artifacts = artifacts if artifacts is not None else artifact_store(redis)
    keep_checkpoints(artifacts, job_id, 0)
    model_id = record.get("model_id")
    if delete_model and model_id and ModelStore(redis, artifacts).delete(model_id):
        return model_id
    return None


def reopen_job(
    store: JobStore,
    job_id: str,
    epochs: int | None = None,
    artifacts: ArtifactStore | None = None,
    max_active: int | None = None,
) -> dict:
    """A cancelled or failed job -> ``queued`` with the next attempt (the caller enqueues
    ``start_job``). ``epochs``: a new total, at least the spec's. ``max_active``: the tenant's
    active-job limit (None: no limit).

    Raises JobNotFoundError, JobActiveError (not cancelled/failed), NoCheckpointError,
    DatasetGoneError (its uploaded data set was deleted), ValueError (fewer epochs than the spec),
    ActiveJobLimitError (the tenant already has ``max_active`` unfinished jobs; nothing changes).
    """
    artifacts = artifacts if artifacts is not None else artifact_store(store.redis)
    meta = load_checkpoint_meta(artifacts, job_id)
    # a job's tenant and data set never change: learn them first, then watch the keys that
    # decide (the set: worker.datasets.in_use; the tenant's active index: the limit)
    first = store.get(job_id) or {}
    tenant = first.get("tenant")
    dataset_id = ((first.get("spec") or {}).get("dataset") or {}).get("id")
    uses = (dataset_key(dataset_id),) if dataset_id else ()
    limited = max_active is not None and tenant is not None
    if limited:
        ensure_indexed(store.redis)
    watched = (*uses, tenant_active_key(tenant)) if limited else uses

    def change(record: dict) -> dict:
        if record["status"] not in RESUMABLE:
            raise JobActiveError(
                f"job {job_id} is {record['status']}; only cancelled or failed jobs resume"
            )
        if meta is None:
            raise NoCheckpointError(f"job {job_id} has no checkpoint to resume from")
        if uses and not store.redis.exists(*uses):
            raise DatasetGoneError(dataset_id)
        spec = dict(record["spec"])
        if epochs is not None:
            if epochs < int(spec["epochs"]):
                raise ValueError(f"epochs: {epochs} is fewer than the job's {spec['epochs']}")
            spec["epochs"] = epochs
        if limited:
            active = active_jobs(store.redis, tenant)
            if active >= max_active:
                raise ActiveJobLimitError(tenant, active, max_active)
        record.update(
            spec=spec,
            status="queued",
            status_reason=f"resuming from the checkpoint at step {meta['global_step']}",
            attempt=record["attempt"] + 1,
            restarts=0,  # a resumed job gets its whole restart budget again
            resumes=record.get("resumes", 0) + 1,
            pending_since=time.time(),
            finished_at=None,
        )
        return record

    def also(pipe, record: dict) -> None:
        reason, epochs_total = record["status_reason"], record["spec"]["epochs"]
        published = {"status": "queued", "status_reason": reason, "epochs": epochs_total}
        pipe.delete(cancel_key(job_id))  # else the new shards would stop at once
        pipe.persist(events_key(job_id))
        pipe.xadd(events_key(job_id), _event("status", published))
        pipe.sadd(ACTIVE_KEY, job_id)
        pipe.sadd(tenant_active_key(record["tenant"]), job_id)  # counts against the limit again

    missing = JobNotFoundError(job_id)
    record = update_json(store.redis, job_key(job_id), change, also, missing, watch=watched)
    reason, spec = record["status_reason"], record["spec"]
    job_log(store.redis, job_id, f"{reason}; {spec['epochs']} epochs in all")
    return record

"""submit_job: the one way a job enters the system (the API and tests call it)."""

from __future__ import annotations

import redis as redis_lib

from worker.jobs import JobStore


def submit_job(
    redis: redis_lib.Redis,
    spec: dict,
    tenant: str,
    max_active: int | None = None,
    job_id: str | None = None,
    fields: dict | None = None,
) -> dict:
    """Create the ``queued`` record and enqueue ``start_job`` on the control queue.

    Raises ``worker.admission.ActiveJobLimitError`` when the tenant has ``max_active``
    unfinished jobs already (nothing is created or enqueued then). ``job_id`` and ``fields``:
    see ``JobStore.create`` (study coordinators pass both).
    """
    from worker.tasks import start_job

    record = JobStore(redis).create(spec, tenant, max_active, job_id=job_id, fields=fields)
    start_job.delay(record["id"])
    return record

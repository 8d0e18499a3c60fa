"""Resuming a job is admitted against the tenant's active-job limit like a submission: refused
with the same 429 at the limit, leaving the job as it was, and atomically (real redis-server)."""

from __future__ import annotations

import pytest

import worker.job_lifecycle
from tests.api.specs import digits_spec
from worker import admission
from worker.admission import ActiveJobLimitError, tenant_active_key
from worker.fence import Unfenced
from worker.job_lifecycle import reopen_job
from worker.jobs import ACTIVE_KEY, JobStore
from worker.storage import artifact_store
from worker.storage.checkpoints import save_checkpoint


def cancelled_with_checkpoint(store: JobStore, artifacts, tenant: str = "alice") -> str:
    """A job of ``tenant`` cancelled while queued, with a checkpoint to resume from."""
    job_id = store.create(digits_spec(), tenant)["id"]
    store.request_cancel(job_id)  # queued -> cancelled at once
    meta = {"global_step": 3, "epoch": 1}
    save_checkpoint(artifacts, job_id, {}, {}, meta, fence=Unfenced(store.redis))
    return job_id


def test_resume_at_the_limit_is_429_like_a_submission_and_the_job_stays_as_it_was(
    alice, app, settings, redis_client
):
    store = JobStore(redis_client)
    job_id = cancelled_with_checkpoint(store, app.state.artifacts)
    queued = [
        alice.post("/v1/jobs", json=digits_spec())
        for _ in range(settings.max_active_jobs_per_tenant)
    ]
    assert [r.status_code for r in queued] == [202] * settings.max_active_jobs_per_tenant
    before = store.get(job_id)
    submitted = alice.post("/v1/jobs", json=digits_spec())

    refused = alice.post(f"/v1/jobs/{job_id}/resume")

    assert refused.status_code == submitted.status_code == 429, refused.text
    assert refused.json() == submitted.json()  # same body: tenant, count and limit
    assert refused.headers["Retry-After"] == submitted.headers["Retry-After"]
    assert store.get(job_id) == before and before["status"] == "cancelled"
    assert not redis_client.sismember(ACTIVE_KEY, job_id)
    assert app.state.started == []  # the refused resume started no shards

    store.request_cancel(queued[0].json()["id"])  # one job ends: a slot is free
    resumed = alice.post(f"/v1/jobs/{job_id}/resume")

    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["status"] == "queued" and resumed.json()["resumes"] == 1
    assert app.state.started == [job_id]
    assert alice.post("/v1/jobs", json=digits_spec()).status_code == 429  # it counts again


def test_the_limit_counts_only_the_tenants_own_jobs(app, redis_client):
    store = JobStore(redis_client)
    job_id = cancelled_with_checkpoint(store, app.state.artifacts)
    for _ in range(2):
        store.create(digits_spec(), "bob", max_active=2)

    assert reopen_job(store, job_id, artifacts=app.state.artifacts, max_active=2)["attempt"] == 1


def test_jobs_queued_before_the_tenant_index_count_against_a_resume(redis_client):
    store = JobStore(redis_client)
    artifacts = artifact_store(redis_client)
    job_id = cancelled_with_checkpoint(store, artifacts)
    other = store.create(digits_spec(), "alice")["id"]
    redis_client.delete(tenant_active_key("alice"), "gradq:admission:indexed")  # as before it

    with pytest.raises(ActiveJobLimitError) as refused:
        reopen_job(store, job_id, artifacts=artifacts, max_active=1)

    assert (refused.value.active, refused.value.limit) == (1, 1)
    assert redis_client.smembers(tenant_active_key("alice")) == {other.encode()}


@pytest.mark.parametrize("meanwhile", ["a submission", "another resume"])
def test_a_job_admitted_between_the_resumes_count_and_its_commit_is_counted(
    redis_client, monkeypatch, meanwhile
):
    """The worst interleaving, made certain: right after the resume counted the tenant's active
    jobs (one, limit two), another job of the tenant takes the last slot. The resume must see
    it (its WATCH fires, it counts again) and be refused."""
    store = JobStore(redis_client)
    artifacts = artifact_store(redis_client)
    job_id, other = (cancelled_with_checkpoint(store, artifacts) for _ in range(2))
    store.create(digits_spec(), "alice", max_active=2)
    admitted = []

    def count_then_admit_another(redis, tenant):
        active = admission.active_jobs(redis, tenant)
        if not admitted:
            admitted.append(meanwhile)  # first, so the other resume's own count admits nothing
            if meanwhile == "a submission":
                store.create(digits_spec(), "alice", max_active=2)
            else:
                reopen_job(store, other, artifacts=artifacts, max_active=2)
        return active

    monkeypatch.setattr(worker.job_lifecycle, "active_jobs", count_then_admit_another)

    with pytest.raises(ActiveJobLimitError) as refused:
        reopen_job(store, job_id, artifacts=artifacts, max_active=2)

    assert refused.value.active == 2 and len(store.active_ids()) == 2
    assert store.get(job_id)["status"] == "cancelled"

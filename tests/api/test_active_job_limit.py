"""The per-tenant active-job limit holds under concurrency: checked and reserved in one atomic
Redis step (issue 10: 60 concurrent submissions used to get 39-42 jobs past a limit of 16)."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.live import LiveApi
from tests.api.specs import digits_spec
from worker.admission import ActiveJobLimitError, index_active_jobs, tenant_active_key
from worker.fence import Unfenced
from worker.job_lifecycle import reopen_job
from worker.jobs import ACTIVE_KEY, JobStore, events_key, job_key, utc_now
from worker.storage import artifact_store
from worker.storage.checkpoints import save_checkpoint

LIMIT = 16
KEYS = {"alice": "key-a", "bob": "key-b", "carol": "key-c", "dave": "key-d"}


@pytest.fixture
def live_api(redis_url, tmp_path):
    """uvicorn with 40 request threads, on the test's private Redis (no workers: jobs queue)."""
    api = LiveApi(
        redis_url,
        tmp_path / "api.log",
        GRADQ_API_KEYS=",".join(f"{tenant}:{key}" for tenant, key in KEYS.items()),
        GRADQ_MAX_ACTIVE_JOBS_PER_TENANT=str(LIMIT),
    )
    yield api
    api.stop()


def submit_concurrently(url: str, tenants: list[str]) -> list[tuple[str, int]]:
    """POST one job per entry of ``tenants``, all at once; (tenant, status code) each."""

    def submit(tenant: str) -> tuple[str, int]:
        headers = {"Authorization": f"Bearer {KEYS[tenant]}"}
        response = httpx.post(url + "/v1/jobs", json=digits_spec(), headers=headers, timeout=120)
        return tenant, response.status_code

    with ThreadPoolExecutor(max_workers=len(tenants)) as pool:
        return list(pool.map(submit, tenants))


@pytest.mark.integration
@pytest.mark.slow
def test_60_concurrent_submissions_get_exactly_the_limit_accepted(live_api, redis_client):
    answers = Counter(code for _, code in submit_concurrently(live_api.url, ["alice"] * 60))
    assert answers == {202: LIMIT, 429: 60 - LIMIT}
    assert len(JobStore(redis_client).list("alice", limit=100)[0]) == LIMIT


@pytest.mark.integration
@pytest.mark.slow
def test_a_four_tenant_burst_gives_each_tenant_exactly_its_limit(live_api):
    burst = [tenant for tenant in KEYS for _ in range(20)]
    answers = Counter(submit_concurrently(live_api.url, burst))
    for tenant in KEYS:
        assert answers[(tenant, 202)] == LIMIT and answers[(tenant, 429)] == 20 - LIMIT


def test_a_finished_job_frees_its_slot(redis_client):
    store = JobStore(redis_client)
    first = store.create(digits_spec(), "alice", max_active=2)
    store.create(digits_spec(), "alice", max_active=2)
    with pytest.raises(ActiveJobLimitError) as refused:
        store.create(digits_spec(), "alice", max_active=2)
    assert (refused.value.active, refused.value.limit) == (2, 2)
    store.create(digits_spec(), "bob", max_active=2)  # other tenants are counted apart
    store.request_cancel(first["id"])  # queued -> cancelled at once
    assert store.create(digits_spec(), "alice", max_active=2)["status"] == "queued"


def test_without_a_limit_create_always_succeeds(redis_client):
    store = JobStore(redis_client)
    ids = {store.create(digits_spec(), "alice")["id"] for _ in range(5)}
    assert len(ids) == 5 and set(store.active_ids()) == ids


def queue_job_as_before_the_index(redis_client, tenant: str) -> str:
    """A queued job written the way ``JobStore.create`` wrote it before the per-tenant active
    index existed: record, tenant list, global active set, created event, and nothing else."""
    job_id = "job_" + secrets.token_hex(8)
    record = {"id": job_id, "tenant": tenant, "spec": digits_spec(), "status": "queued"}
    record |= {"attempt": 0, "restarts": 0, "created_at": utc_now(), "started_at": None}
    pipe = redis_client.pipeline()
    pipe.set(job_key(job_id), json.dumps(record))
    pipe.zadd(f"gradq:tenant:{tenant}:jobs", {f"{time.time_ns() // 1000:017d}|{job_id}": 0})
    pipe.sadd(ACTIVE_KEY, job_id)
    pipe.xadd(events_key(job_id), {"data": json.dumps({"type": "created", **record})})
    pipe.execute()
    return job_id


def test_jobs_queued_before_the_tenant_index_count_against_the_limit(redis_client):
    old = [queue_job_as_before_the_index(redis_client, "alice") for _ in range(2)]
    store = JobStore(redis_client)

    with pytest.raises(ActiveJobLimitError) as refused:
        store.create(digits_spec(), "alice", max_active=2)

    assert refused.value.active == 2
    assert store.create(digits_spec(), "bob", max_active=2)["status"] == "queued"
    listed, _ = store.list("alice", status="queued")
    assert sorted(r["id"] for r in listed) == sorted(old)
    store.request_cancel(old[0])  # an old job that finishes frees its slot like any other
    assert store.create(digits_spec(), "alice", max_active=2)["status"] == "queued"


def test_indexing_the_active_jobs_is_idempotent_and_skips_finished_and_vanished_jobs(
    redis_client,
):
    old = queue_job_as_before_the_index(redis_client, "alice")
    finished = queue_job_as_before_the_index(redis_client, "alice")
    JobStore(redis_client).request_cancel(finished)
    redis_client.sadd(ACTIVE_KEY, "job_0000000000000000")  # its record is gone

    assert index_active_jobs(redis_client) == 1
    assert index_active_jobs(redis_client) == 0
    assert redis_client.smembers(tenant_active_key("alice")) == {old.encode()}


def test_a_resumed_job_counts_against_the_limit_again(redis_client):
    store = JobStore(redis_client)
    first = store.create(digits_spec(), "alice", max_active=2)
    store.request_cancel(first["id"])
    store.create(digits_spec(), "alice", max_active=2)  # counting prunes the cancelled job
    fence = Unfenced(redis_client)  # written as an attempt of the job left it
    save_checkpoint(
        artifact_store(redis_client), first["id"], {}, {}, {"global_step": 1}, fence=fence
    )

    reopen_job(store, first["id"])

    with pytest.raises(ActiveJobLimitError) as refused:
        store.create(digits_spec(), "alice", max_active=2)
    assert refused.value.active == 2


def test_the_api_refuses_a_job_over_the_limit_counting_jobs_from_before_the_index(
    alice, settings, redis_client
):
    for _ in range(settings.max_active_jobs_per_tenant):
        queue_job_as_before_the_index(redis_client, "alice")

    response = alice.post("/v1/jobs", json=digits_spec())

    assert response.status_code == 429, response.text
    assert f"{settings.max_active_jobs_per_tenant} queued or running" in response.json()["detail"]

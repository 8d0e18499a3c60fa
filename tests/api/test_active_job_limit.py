"""The per-tenant active-job limit holds under concurrency: checked and reserved in one atomic
Redis step (issue 10: 60 concurrent submissions used to get 39-42 jobs past a limit of 16)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.live import LiveApi
from tests.api.specs import digits_spec
from worker.admission import ActiveJobLimitError
from worker.jobs import JobStore

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

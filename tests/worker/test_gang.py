"""Gang start: all N shards start step 0 together; too few workers never deadlock a job."""

from __future__ import annotations

import time

import pytest

from tests.harness import wait_until
from tests.worker.jobs_helpers import FAST, blobs_spec, wait_finished
from worker.jobs import JobStore
from worker.submit import submit_job

pytestmark = pytest.mark.integration


def test_with_too_few_workers_a_job_waits_with_a_reason_then_fails(redis_client, start_worker):
    start_worker(concurrency=2, GRADQ_MAX_PENDING_SECONDS="3", **FAST)
    store = JobStore(redis_client)

    job = submit_job(redis_client, blobs_spec(shards=4), tenant="acme")
    waiting = wait_until(
        lambda: (
            (r := store.get(job["id"]))["status_reason"].startswith("waiting for workers") and r
        ),
        20,
        "the gang to report its wait",
    )
    record = wait_finished(redis_client, job["id"], timeout=20)

    assert waiting["status"] == "queued" and "of 4 shards" in waiting["status_reason"]
    assert record["status"] == "failed" and record["step"] == 0
    assert record["status_reason"].startswith("could not start: only")
    assert "of 4 shards got a worker within 3 s" in record["status_reason"]
    ok = wait_finished(redis_client, submit_job(redis_client, blobs_spec(2), "acme")["id"])
    assert ok["status"] == "succeeded"  # the slots were given back


def test_two_jobs_each_holding_half_the_slots_do_not_deadlock(redis_client, start_worker):
    from worker.gang import mark_pending
    from worker.tasks import train_shard

    store = JobStore(redis_client)
    older, younger = (store.create(blobs_spec(shards=2), "acme")["id"] for _ in range(2))
    for offset, job_id in enumerate((older, younger)):
        store.update(job_id, {"pending_since": time.time() + offset})
        mark_pending(store, job_id, time.time() + offset)
    # interleaved: each job's shard 0 takes one of the two slots, its shard 1 waits in the queue
    for job_id, shard in ((older, 0), (younger, 0), (older, 1), (younger, 1)):
        train_shard.delay(job_id, shard, 0)

    start_worker(concurrency=2, **FAST)

    assert wait_finished(redis_client, older, 60)["status"] == "succeeded"
    assert wait_finished(redis_client, younger, 60)["status"] == "succeeded"


def wait_for_reason(store: JobStore, job_id: str, part: str, what: str) -> None:
    """Wait up to 20 s until the job's status_reason contains ``part``."""
    wait_until(lambda: part in (store.get(job_id)["status_reason"] or ""), 20, what)


def test_cancel_while_waiting_for_the_gang_frees_the_slots(redis_client, start_worker):
    start_worker(concurrency=1, **FAST)
    store = JobStore(redis_client)
    job = submit_job(redis_client, blobs_spec(shards=2), tenant="acme")
    wait_for_reason(store, job["id"], "waiting for workers: 1", "one shard to claim the only slot")

    assert store.request_cancel(job["id"])["status"] == "cancelled"
    ok = wait_finished(redis_client, submit_job(redis_client, blobs_spec(1), "acme")["id"])
    assert ok["status"] == "succeeded"


def test_a_gang_bigger_than_the_workers_does_not_block_a_job_that_fits(redis_client, start_worker):
    start_worker(concurrency=2, GRADQ_MAX_PENDING_SECONDS="600", **FAST)
    store = JobStore(redis_client)
    # older than the small job, so before this rule it held both slots as the oldest pending gang
    big = submit_job(redis_client, blobs_spec(shards=4), tenant="acme")
    wait_for_reason(store, big["id"], "waiting for workers", "the big gang to start waiting")

    small = wait_finished(redis_client, submit_job(redis_client, blobs_spec(2), "bob")["id"], 60)

    assert small["status"] == "succeeded", small["status_reason"]
    assert store.get(big["id"])["status"] == "queued"  # still waiting, within its 600 s
    reasons = [e.get("status_reason") for _, e in store.events(big["id"], count=10_000)]
    assert any(
        r.endswith("of 4 shards started, and the live training workers have 2 slots in all")
        for r in reasons
        if r
    )


def one_of_two_slots_busy(redis_client, start_worker) -> tuple[JobStore, dict]:
    """A worker with 2 slots (gang deadline 600 s), one of them running a job that never ends."""
    start_worker(concurrency=2, GRADQ_MAX_PENDING_SECONDS="600", **FAST)
    store = JobStore(redis_client)
    running = submit_job(redis_client, blobs_spec(1, epochs=100_000), tenant="acme")
    wait_until(lambda: store.get(running["id"])["status"] == "running", 30, "the long job")
    return store, running


def test_a_gang_waiting_for_busy_slots_lets_a_job_that_fits_run_first(redis_client, start_worker):
    store, running = one_of_two_slots_busy(redis_client, start_worker)
    # 2 shards on 2 slots: it could run, but one slot is busy for as long as the long job runs
    gang = submit_job(redis_client, blobs_spec(2), tenant="acme")
    wait_for_reason(store, gang["id"], "waiting for workers", "the gang to start waiting")

    small = wait_finished(redis_client, submit_job(redis_client, blobs_spec(1), "bob")["id"], 60)

    assert small["status"] == "succeeded", small["status_reason"]
    assert store.get(running["id"])["status"] == "running"
    assert store.get(gang["id"])["status"] == "queued"  # its reservation starts after 300 s
    reasons = [e.get("status_reason") or "" for _, e in store.events(gang["id"], count=10_000)]
    assert any("1 of the 2 slots are busy with running jobs" in r for r in reasons)
    store.request_cancel(running["id"])
    assert wait_finished(redis_client, gang["id"], 60)["status"] == "succeeded"


def test_past_half_its_deadline_a_waiting_gang_keeps_its_slots(redis_client, start_worker):
    store, running = one_of_two_slots_busy(redis_client, start_worker)
    gang = submit_job(redis_client, blobs_spec(2), tenant="acme")
    store.update(gang["id"], {"pending_since": time.time() - 400})  # waited past 300 s
    wait_for_reason(store, gang["id"], "waiting for workers: 1 of 2", "the gang to hold a slot")

    small = submit_job(redis_client, blobs_spec(1), "bob")
    time.sleep(3)  # the scenario: a window in which the reserved slot must stay the gang's

    assert store.get(small["id"])["status"] == "queued"
    store.request_cancel(running["id"])
    assert wait_finished(redis_client, gang["id"], 60)["status"] == "succeeded"
    assert wait_finished(redis_client, small["id"], 60)["status"] == "succeeded"

"""A shard task reserved by a worker killed before starting it: the sweep restarts its job; a task
waiting in the queue for a free worker is left alone."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.harness import wait_until
from tests.worker.jobs_helpers import FAST, digits_spec, wait_finished
from worker.celery_app import CONTROL_QUEUE, TRAINING_QUEUE
from worker.config import Settings
from worker.job_logs import read_logs
from worker.jobs import JobStore
from worker.lost_tasks import lost_grace_seconds
from worker.submit import submit_job

pytestmark = pytest.mark.integration

PATIENT = FAST | {"GRADQ_MAX_PENDING_SECONDS": "300"}


def busy_spec() -> dict:
    # one shard that runs until cancelled: it keeps a single-slot worker busy past the grace
    return digits_spec(shards=1, epochs=100_000, batch_size=16, checkpoint_every=25)


def grace() -> float:
    env = {key.removeprefix("GRADQ_").lower(): value for key, value in FAST.items()}
    return lost_grace_seconds(Settings(**env))


def reserved_by_a_worker(redis_client, job_id: str, task: str) -> bool:
    # Kombu's Redis transport keeps a delivered, unacknowledged message in the "unacked" hash
    return any(
        job_id.encode() in raw and task.encode() in raw for raw in redis_client.hvals("unacked")
    )


def wait_running(redis_client, job_id: str, timeout: float = 60) -> None:
    store = JobStore(redis_client)
    wait_until(lambda: store.get(job_id)["status"] == "running", timeout, f"{job_id} running")


def log_text(redis_client, job_id: str) -> str:
    return " ".join(line["message"] for line in read_logs(redis_client, job_id, count=1000))


def test_a_shard_task_reserved_by_a_killed_worker_is_relaunched(redis_client, start_worker):
    start_worker(concurrency=1, queues=CONTROL_QUEUE, **PATIENT)  # runs start_job (and sweeps)
    # prefetch 4 (Celery's CLI reads CELERY_WORKER_PREFETCH_MULTIPLIER): the single-slot worker,
    # busy with the first job, reserves the second job's shard message without starting it
    hoarder = start_worker(
        concurrency=1, queues=TRAINING_QUEUE, CELERY_WORKER_PREFETCH_MULTIPLIER="4", **PATIENT
    )
    busy = submit_job(redis_client, busy_spec(), tenant="acme")
    wait_running(redis_client, busy["id"])
    job = submit_job(redis_client, digits_spec(shards=1, epochs=2), tenant="acme")
    reserved = lambda: reserved_by_a_worker(redis_client, job["id"], "train_shard")  # noqa: E731
    wait_until(reserved, 30, "the shard's reservation")
    assert not redis_client.exists(f"gradq:job:{job['id']}:a0:holding")  # never started

    os.killpg(hoarder.process.pid, signal.SIGKILL)
    hoarder.process.wait(10)
    start_worker(concurrency=2, queues=TRAINING_QUEUE, **PATIENT)
    record = wait_finished(redis_client, job["id"], timeout=90)  # not the 300-s gang deadline

    assert record["status"] == "succeeded", record["status_reason"]
    assert record["attempt"] == 1
    assert record["restarts"] == 0  # the job did nothing wrong: not counted
    assert "shard task(s) 0 of attempt 0 were lost with their worker" in log_text(
        redis_client, job["id"]
    )


def test_a_start_job_reserved_by_a_killed_worker_is_sent_again(redis_client, start_worker):
    # one single-slot worker for both queues, busy, reserving the second job's start_job
    hoarder = start_worker(concurrency=1, CELERY_WORKER_PREFETCH_MULTIPLIER="4", **PATIENT)
    busy = submit_job(redis_client, busy_spec(), tenant="acme")
    wait_running(redis_client, busy["id"])
    job = submit_job(redis_client, digits_spec(shards=1, epochs=2), tenant="acme")
    reserved = lambda: reserved_by_a_worker(redis_client, job["id"], "start_job")  # noqa: E731
    wait_until(reserved, 30, "the start's reservation")
    assert not redis_client.exists(f"gradq:job:{job['id']}:a0:launched")

    os.killpg(hoarder.process.pid, signal.SIGKILL)
    hoarder.process.wait(10)
    start_worker(concurrency=2, **PATIENT)
    record = wait_finished(redis_client, job["id"], timeout=90)

    assert record["status"] == "succeeded", record["status_reason"]
    assert (record["attempt"], record["restarts"]) == (0, 0)  # the same attempt, launched late
    assert "the start of attempt 0 was lost with its worker" in log_text(redis_client, job["id"])


def test_a_shard_task_waiting_for_a_free_worker_is_never_relaunched(redis_client, start_worker):
    start_worker(concurrency=1, queues=CONTROL_QUEUE, **PATIENT)  # launches both at once
    # prefetch 1: the busy slot reserves nothing more, so the shard message waits in the queue
    start_worker(concurrency=1, queues=TRAINING_QUEUE, **PATIENT)
    busy = submit_job(redis_client, busy_spec(), tenant="acme")
    wait_running(redis_client, busy["id"])
    job = submit_job(redis_client, digits_spec(shards=1, epochs=2), tenant="acme")
    wait_until(lambda: redis_client.exists(f"gradq:job:{job['id']}:a0:launched"), 30, "launch")
    store = JobStore(redis_client)
    # past the lost-task grace, its message still in the queue behind the busy slot (the busy
    # job is cancelled then, not awaited: 400 epochs can outlast any deadline under load)
    deadline = time.monotonic() + grace() + 3
    wait_until(lambda: time.monotonic() > deadline, grace() + 10, "the grace to pass")
    still_waiting = store.get(job["id"])

    store.request_cancel(busy["id"])  # frees the slot: the waiting message runs now
    record = wait_finished(redis_client, job["id"], timeout=90)

    assert (still_waiting["status"], still_waiting["attempt"]) == ("queued", 0)
    assert record["status"] == "succeeded", record["status_reason"]
    assert (record["attempt"], record["restarts"]) == (0, 0)

"""A worker stopped with SIGTERM mid-job hands the job back: no restart is counted (nothing failed),
the worker exits without waiting for the job, and another worker finishes it with the weights of an
uninterrupted run.

SIGTERM reaches a worker two ways: ``gradq up`` signals each child's whole process group (the pool
processes get it directly), a container runtime signals the main process only (it forwards it).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.harness import wait_until
from tests.worker.jobs_helpers import (
    FAST,
    assert_same_weights,
    blobs_spec,
    model_weights,
    wait_finished,
)
from tests.worker.test_recovery import long_spec, wait_step
from worker.jobs import JobStore
from worker.submit import submit_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def stop_group(worker) -> None:
    os.killpg(worker.process.pid, signal.SIGTERM)


def stop_main_process(worker) -> None:
    os.kill(worker.process.pid, signal.SIGTERM)


@pytest.mark.parametrize("stop", [stop_group, stop_main_process], ids=["group", "main-process"])
def test_a_sigtermed_worker_hands_its_job_back_without_counting_a_restart(
    redis_client, start_worker, stop
):
    # max_restarts=0: a stop counted as a restart (how a crash is counted) would fail the job
    spec = long_spec(epochs=40, max_restarts=0)
    first = start_worker(concurrency=2, **FAST)
    job = submit_job(redis_client, spec, tenant="acme")
    wait_step(redis_client, job["id"], 60)

    stop(first)
    first.process.wait(30)  # a warm shutdown used to wait until the job ended
    store = JobStore(redis_client)
    handed_back = store.get(job["id"])
    start_worker(concurrency=2, **FAST)
    record = wait_finished(redis_client, job["id"], timeout=120)

    assert handed_back["status"] == "queued" and handed_back["step"] < record["steps_total"]
    assert handed_back["status_reason"].endswith("worker was stopped (SIGTERM)")
    assert record["status"] == "succeeded", record["status_reason"]
    assert record["restarts"] == 0 and record["attempt"] == 1
    log = first.log_path.read_text()
    assert "WorkerLostError" not in log  # the shards returned; none was killed by the signal
    clean = wait_finished(redis_client, submit_job(redis_client, spec, "acme")["id"], 120)
    assert_same_weights(
        model_weights(redis_client, record["model_id"]),
        model_weights(redis_client, clean["model_id"]),
        rtol=1e-6,
    )


def test_a_shard_waiting_for_its_gang_gives_its_place_back_uncounted(redis_client, start_worker):
    first = start_worker(concurrency=2, **FAST)
    store = JobStore(redis_client)
    # the long 1-shard job takes one slot; the 2-shard job's shard 0 holds the other, waiting
    busy = submit_job(redis_client, long_spec(epochs=150, shards=1, max_restarts=0), "acme")
    wait_step(redis_client, busy["id"], 30)
    gang = submit_job(redis_client, blobs_spec(shards=2) | {"max_restarts": 0}, "bob")
    # pending for 400 of its 600 s: past half its deadline a gang keeps the slot it waits in
    # (younger, it would give the slot back to jobs that fit: worker/gang.py)
    store.update(gang["id"], {"pending_since": time.time() - 400})
    wait_until(
        lambda: "1 of 2 shards started" in (store.get(gang["id"])["status_reason"] or ""),
        30,
        "shard 0 to wait for its gang",
    )

    assert [store.get(job["id"])["status"] for job in (busy, gang)] == ["running", "queued"]

    stop_group(first)
    first.process.wait(30)
    start_worker(concurrency=3, **FAST)
    records = [wait_finished(redis_client, job["id"], timeout=240) for job in (busy, gang)]

    # before: the waiting shard died of the signal and the sweep restarted its job, counted
    # (with max_restarts 0: failed)
    for record in records:
        assert record["status"] == "succeeded", record["status_reason"]
        assert record["restarts"] == 0


def test_a_sigtermed_idle_worker_exits_at_once(start_worker):
    worker = start_worker(concurrency=2, **FAST)
    pool = worker.child_pids()

    stop_group(worker)

    wait_until(lambda: worker.process.poll() is not None, 15, "the idle worker to exit")
    wait_until(lambda: not any(_alive(pid) for pid in pool), 5, "its pool processes to exit")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False

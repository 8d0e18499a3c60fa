"""Dead shards and restarted workers: jobs resume from their checkpoint and are never lost."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from tests.harness import wait_until
from tests.worker.jobs_helpers import (
    FAST,
    assert_same_weights,
    digits_spec,
    model_weights,
    wait_finished,
)
from worker.collective.shm_transport import SHM_DIR
from worker.job_logs import read_logs
from worker.jobs import JobStore
from worker.loss_curve import read_points
from worker.submit import submit_job

pytestmark = pytest.mark.integration


def long_spec(**overrides) -> dict:
    # ~80 steps per epoch, ~1 ms each on shared memory: 1,280 steps, while the first progress
    # report after step 1 comes 0.5 s in, so a kill after wait_step lands mid-job
    return digits_spec(shards=2, epochs=16, batch_size=16, checkpoint_every=25) | overrides


def wait_step(redis_client, job_id: str, step: int) -> None:
    store = JobStore(redis_client)
    wait_until(lambda: (store.get(job_id)["step"] or 0) >= step, 60, f"step {step}")


def segments(job_id: str, attempt: str = "*") -> list:
    """The job's shared-memory files on this host (the harness's workers run here)."""
    return list(SHM_DIR.glob(f"gradq-{job_id}-a{attempt}-*"))


def test_a_sigkilled_shard_costs_one_restart_changes_no_weight_and_leaks_no_segment(
    redis_client, start_worker
):
    worker = start_worker(concurrency=2, **FAST)
    job = submit_job(redis_client, long_spec(), tenant="acme")
    wait_step(redis_client, job["id"], 60)
    assert len(segments(job["id"], "0")) == 2  # the default (auto) exchanges through /dev/shm

    os.kill(worker.child_pids()[0], signal.SIGKILL)
    store = JobStore(redis_client)
    wait_until(lambda: store.get(job["id"])["attempt"] == 1, 30, "the restart")
    assert segments(job["id"], "0") == []  # the killed shard's leaked file went with the restart
    record = wait_finished(redis_client, job["id"], timeout=90)

    assert record["status"] == "succeeded", record["status_reason"]
    assert record["restarts"] == 1
    assert {h["transport"] for h in record["history"]} == {"shm"}
    wait_until(lambda: not segments(job["id"]), 10, "no segment of the job left in /dev/shm")
    reasons = [e.get("status_reason") or "" for _, e in JobStore(redis_client).events(job["id"])]
    assert any("restarting from the last checkpoint: shard" in r and "died" in r for r in reasons)
    # the job's own log says so too, as a whole-job line (no shard) with its time
    restarts = [
        line
        for line in read_logs(redis_client, job["id"], count=1000)
        if line["message"].startswith("restarting from the last checkpoint (restart 1 of at most")
    ]
    assert len(restarts) == 1 and restarts[0]["shard"] is None and "died" in restarts[0]["message"]
    # resuming from the checkpoint gives exactly the uninterrupted run's weights
    clean = wait_finished(redis_client, submit_job(redis_client, long_spec(), "acme")["id"])
    assert clean["restarts"] == 0
    assert_same_weights(
        model_weights(redis_client, record["model_id"]),
        model_weights(redis_client, clean["model_id"]),
        rtol=1e-6,
    )
    # the per-step loss curve forgets the steps the dead attempt did after its checkpoint
    resumed, uninterrupted = (read_points(redis_client, j["id"]) for j in (record, clean))
    assert resumed[:, 0].tolist() == uninterrupted[:, 0].tolist()
    np.testing.assert_allclose(resumed[:, 1], uninterrupted[:, 1], rtol=1e-6)


def test_a_job_whose_workers_all_died_is_picked_up_by_a_new_worker(redis_client, start_worker):
    first = start_worker(concurrency=2, **FAST)
    job = submit_job(redis_client, long_spec(), tenant="acme")
    wait_step(redis_client, job["id"], 40)

    os.killpg(first.process.pid, signal.SIGKILL)  # main process and pool children at once
    first.process.wait(10)
    start_worker(concurrency=2, **FAST)
    record = wait_finished(redis_client, job["id"], timeout=90)

    assert record["status"] == "succeeded", record["status_reason"]
    assert record["restarts"] == 1


def test_past_max_restarts_the_job_fails_naming_the_dead_shard(redis_client, start_worker):
    worker = start_worker(concurrency=2, **FAST)
    # it must not end before the kill; it fails right after, so its length costs nothing
    job = submit_job(redis_client, long_spec(max_restarts=0, epochs=200), tenant="acme")
    wait_step(redis_client, job["id"], 30)

    os.kill(worker.child_pids()[1], signal.SIGKILL)
    record = wait_finished(redis_client, job["id"], timeout=60)

    assert record["status"] == "failed"
    assert "shard" in record["status_reason"] and "died" in record["status_reason"]
    assert "last heartbeat 20" in record["status_reason"]  # when: an ISO timestamp
    assert "gave up after 0 restart(s)" in record["status_reason"]


def test_a_queued_job_whose_shard_died_with_its_worker_while_preparing_restarts_at_once(
    redis_client, start_worker
):
    patient = FAST | {"GRADQ_MAX_PENDING_SECONDS": "300"}
    doomed = start_worker(concurrency=1, **patient)
    job = submit_job(redis_client, digits_spec(shards=1, epochs=2), tenant="acme")
    holding, claimed = (f"gradq:job:{job['id']}:a0:{name}" for name in ("holding", "claimed"))
    # a fresh pool process takes 1-2 s to load the data set (the scikit-learn import): the
    # shard heartbeats from its start, and claims its gang slot only once prepared
    wait_until(lambda: redis_client.sismember(holding, 0), 60, "shard 0 preparing", interval=0.01)
    assert redis_client.scard(claimed) == 0

    # SIGKILL of the whole worker: Celery redelivers only when a pool child dies, so the task
    # now sits unacknowledged for the broker's visibility timeout (hours); nothing claimed a
    # gang slot, so no peer can notice either
    os.killpg(doomed.process.pid, signal.SIGKILL)
    doomed.process.wait(10)
    start_worker(concurrency=1, **patient)
    record = wait_finished(redis_client, job["id"], timeout=60)  # not the 300-s gang deadline

    assert record["status"] == "succeeded", record["status_reason"]
    assert record["restarts"] == 1
    log = " ".join(line["message"] for line in read_logs(redis_client, job["id"], count=1000))
    assert "shard 0 of attempt 0 died before training started" in log

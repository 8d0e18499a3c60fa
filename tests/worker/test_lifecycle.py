"""Resume after a cancel or a failure, fine-tuning from a stored model, and the job's log lines.

Shards run in-process (threads, real Redis) so the interruption lands on a chosen step.
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

from tests.harness import run_in_threads
from tests.worker.jobs_helpers import assert_same_weights, digits_spec, model_weights
from worker.collective.allreduce import data_client
from worker.config import Settings
from worker.job_lifecycle import NoCheckpointError, reopen_job
from worker.job_logs import read_logs
from worker.jobs import JobStore
from worker.models_store import ModelStore
from worker.runner import run_shard_task
from worker.shard_context import JobCancelledError
from worker.storage.checkpoints import load_checkpoint_meta
from worker.storage.filesystem import FileBackend
from worker.storage.url import artifact_store

pytestmark = pytest.mark.integration


def run_attempt(url: str, job_id: str, attempt: int, num_shards: int, stop_at=None, how=None):
    """All shards of one attempt in threads; shard 0 is cancelled or fails after ``stop_at``."""
    settings = Settings(redis_url=url, peer_timeout_seconds=5, heartbeat_seconds=0.3)

    def shard(i):
        store = JobStore(redis.Redis.from_url(url))

        def hook(step):
            if i == 0 and step == stop_at:
                if how == "cancel":
                    store.request_cancel(job_id)
                    raise JobCancelledError(job_id)
                raise RuntimeError("disk full")

        return run_shard_task(
            store, data_client(url), settings, job_id, i, attempt, lambda: None, print, hook
        )

    return run_in_threads(shard, num_shards, timeout=120)


@pytest.mark.parametrize(
    ("how", "more_epochs"), [("cancel", True), ("fail", True), ("fail", False)]
)
def test_a_resumed_job_ends_with_the_weights_of_an_uninterrupted_run_of_its_total_epochs(
    redis_url, redis_client, how, more_epochs
):
    store = JobStore(redis_client)
    spec = digits_spec(shards=2, epochs=1 if more_epochs else 2, batch_size=32, checkpoint_every=5)
    clean = store.create({**spec, "epochs": 2}, "acme")["id"]
    run_attempt(redis_url, clean, 0, 2)

    interrupted = store.create(spec, "acme")["id"]
    run_attempt(redis_url, interrupted, 0, 2, stop_at=7, how=how)
    assert store.get(interrupted)["status"] == ("cancelled" if how == "cancel" else "failed")
    if how == "cancel":
        assert store.get(interrupted)["status_reason"] == "cancelled; the last checkpoint is kept"
    reopened = reopen_job(store, interrupted, epochs=2 if more_epochs else None)
    assert reopened["status"] == "queued" and reopened["attempt"] == 1
    run_attempt(redis_url, interrupted, 1, 2)

    a, b = store.get(clean), store.get(interrupted)
    assert a["status"] == b["status"] == "succeeded", b["status_reason"]
    assert b["resumes"] == 1 and len(b["history"]) == 2
    weights_a = model_weights(redis_client, a["model_id"])
    assert_same_weights(model_weights(redis_client, b["model_id"]), weights_a, rtol=0)
    messages = [line["message"] for line in read_logs(redis_client, interrupted, count=1000)]
    assert "weights from the checkpoint at step 5 (epoch 1, after batch 5)" in messages
    assert any("resuming from the checkpoint at step 5; 2 epochs in all" in m for m in messages)
    stop = "stopping: cancelled" if how == "cancel" else "RuntimeError: disk full"
    assert any(stop in m for m in messages)


def test_a_job_without_a_checkpoint_cannot_resume(redis_client):
    store = JobStore(redis_client)
    job_id = store.create(digits_spec(), "acme")["id"]
    store.request_cancel(job_id)  # cancelled before it started: nothing was saved
    with pytest.raises(NoCheckpointError):
        reopen_job(store, job_id)


def test_a_job_cancelled_before_its_first_checkpoint_says_it_cannot_resume(redis_url, redis_client):
    store = JobStore(redis_client)
    job_id = store.create(digits_spec(shards=2, batch_size=32, checkpoint_every=5), "acme")["id"]
    run_attempt(redis_url, job_id, 0, 2, stop_at=2, how="cancel")  # before the step-5 save
    record = store.get(job_id)
    assert record["status"] == "cancelled"
    assert record["status_reason"] == "cancelled; no checkpoint to resume from"
    with pytest.raises(NoCheckpointError):
        reopen_job(store, job_id)


def test_a_succeeded_job_leaves_no_checkpoint_folder_in_the_file_store(redis_url, redis_client):
    store = JobStore(redis_client)
    job_id = store.create(digits_spec(shards=2, batch_size=32, checkpoint_every=5), "acme")["id"]
    backend = artifact_store(redis_client).backend
    assert isinstance(backend, FileBackend)  # tests/conftest.py sets a file:// store
    folder = backend.path(f"checkpoints/{job_id}")

    run_attempt(redis_url, job_id, 0, 2)

    assert store.get(job_id)["status"] == "succeeded"
    assert not folder.exists()


def test_checkpoints_land_on_multiples_of_checkpoint_every_of_the_global_step(
    redis_url, redis_client
):
    # digits on 2 shards with batches of 32: 41 steps an epoch, so in the second epoch (steps
    # 42-82) an epoch's own count (the old rule: saves at 61 and 81) and the global step's
    # multiples of 20 (60 and 80) differ
    store = JobStore(redis_client)
    job_id = store.create(digits_spec(shards=2, epochs=3, batch_size=32, checkpoint_every=20), "a")
    job_id = job_id["id"]
    run_attempt(redis_url, job_id, 0, 2, stop_at=78, how="fail")
    record = store.get(job_id)
    assert record["status"] == "failed" and record["steps_total"] == 3 * 41

    newest = load_checkpoint_meta(artifact_store(redis_client), job_id)

    assert newest["global_step"] == 60


def test_fine_tuning_starts_from_the_stored_models_weights(redis_url, redis_client):
    store = JobStore(redis_client)
    base = store.create(digits_spec(shards=1, epochs=2), "acme")["id"]
    run_attempt(redis_url, base, 0, 1)
    base_model = store.get(base)["model_id"]
    # an almost-zero learning rate: the fine-tuned weights stay at their starting point
    spec = digits_spec(shards=1, optimizer={"type": "sgd", "lr": 1e-12}, seed=99)
    spec["init_from"] = {"model": "digits-mlp/versions/1", "model_id": base_model}
    tuned = store.create(spec, "acme")["id"]
    run_attempt(redis_url, tuned, 0, 1)

    record = store.get(tuned)
    assert record["status"] == "succeeded", record["status_reason"]
    start, end = (model_weights(redis_client, m) for m in (base_model, record["model_id"]))
    for name in start:
        np.testing.assert_allclose(end[name], start[name], rtol=0, atol=1e-6)
    assert ModelStore(redis_client).get(record["model_id"])["version"] == 2
    lines = read_logs(redis_client, tuned, count=100)
    assert any(f"weights from model {base_model}" in line["message"] for line in lines)


def test_log_lines_name_the_shard_the_data_set_and_the_model(redis_url, redis_client):
    store = JobStore(redis_client)
    job_id = store.create(digits_spec(shards=2), "acme")["id"]
    run_attempt(redis_url, job_id, 0, 2)
    lines = read_logs(redis_client, job_id, count=100)
    for shard in (0, 1):
        mine = [line["message"] for line in lines if line["shard"] == shard]
        assert any(m.startswith(f"shard {shard}/2 attempt 0 on ") for m in mine)
        assert any(m.startswith("data set digits: ") and "shape [64]" in m for m in mine)
    finished = [line for line in lines if "training finished" in line["message"]]
    assert len(finished) == 1 and finished[0]["shard"] == 0
    assert all(line["time"].endswith("Z") and line["level"] == "info" for line in lines)

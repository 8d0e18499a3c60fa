"""Data-parallel training through real Celery workers: results, N-equivalence, errors, cancel."""

from __future__ import annotations

import time

import numpy as np
import pytest

import nnlib
from tests.harness import wait_until
from tests.worker.jobs_helpers import (
    FAST,
    assert_same_weights,
    digits_spec,
    model_weights,
    wait_finished,
    wait_status,
)
from worker.jobs import JobStore
from worker.models_store import ModelStore
from worker.storage import artifact_store
from worker.storage.checkpoints import checkpoint_keys, load_checkpoint
from worker.submit import submit_job

pytestmark = pytest.mark.integration


def test_a_two_shard_job_trains_evaluates_and_stores_its_model(redis_client, start_worker):
    start_worker(concurrency=2, **FAST)

    job = submit_job(redis_client, digits_spec(shards=2, epochs=2), tenant="acme")
    record = wait_finished(redis_client, job["id"])

    assert record["status"] == "succeeded", record["status_reason"]
    assert record["progress"] == 1.0 and record["step"] == record["steps_total"] > 2
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert record["history"][1]["val_accuracy"] > 0.8
    assert all(h["comm_seconds"] > 0 and h["samples_per_second"] > 0 for h in record["history"])
    assert record["metrics"]["test_accuracy"] > 0.8
    model, meta = ModelStore(redis_client).load_model(record["model_id"])
    assert meta["job_id"] == job["id"] and meta["tenant"] == "acme"
    assert meta["metrics"] == record["metrics"] and meta["classes"] is not None
    events = JobStore(redis_client).events(job["id"])
    assert events[-1][1]["status"] == "succeeded"
    assert {"created", "status", "epoch"} <= {e["type"] for _, e in events}


def test_one_two_and_four_shards_end_with_the_same_weights(redis_client, start_worker):
    start_worker(concurrency=4, **FAST)
    records = {}
    for shards in (1, 2, 4):
        job = submit_job(redis_client, digits_spec(shards=shards), tenant="acme")
        records[shards] = wait_finished(redis_client, job["id"], timeout=90)
        assert records[shards]["status"] == "succeeded", records[shards]["status_reason"]

    reference = model_weights(redis_client, records[1]["model_id"])
    for shards in (2, 4):
        assert_same_weights(
            model_weights(redis_client, records[shards]["model_id"]), reference, rtol=1e-4
        )
        accuracy = records[shards]["metrics"]["test_accuracy"]
        assert accuracy == pytest.approx(records[1]["metrics"]["test_accuracy"], abs=1e-3)


def test_one_shard_equals_local_nnlib_fit(redis_client, start_worker):
    from worker.datasets import load_dataset

    start_worker(concurrency=1, **FAST)
    spec = digits_spec(shards=1, epochs=2, optimizer={"type": "adam", "lr": 0.01})
    job = submit_job(redis_client, spec, tenant="acme")

    data = load_dataset(spec["dataset"], seed=spec["seed"])
    local = nnlib.build_model(spec["model"], data.input_shape, seed=spec["seed"])
    nnlib.fit(
        local,
        "cross_entropy",
        spec["optimizer"],
        data.x_train,
        data.y_train,
        epochs=2,
        batch_size=64,
        seed=spec["seed"],
    )
    record = wait_finished(redis_client, job["id"])

    assert record["status"] == "succeeded", record["status_reason"]
    assert_same_weights(
        model_weights(redis_client, record["model_id"]), local.parameters(), rtol=1e-5
    )


def test_cancel_stops_a_running_job_within_two_seconds_and_keeps_its_checkpoint(
    redis_client, start_worker
):
    start_worker(concurrency=2, **FAST)
    job = submit_job(redis_client, digits_spec(shards=2, epochs=200, batch_size=16), tenant="acme")
    store = JobStore(redis_client)
    wait_until(lambda: (store.get(job["id"])["epoch"] or 0) >= 2, 60, "two epochs")

    requested = time.monotonic()
    assert store.request_cancel(job["id"])["status"] == "cancelling"
    record = wait_status(redis_client, job["id"], {"cancelled"}, timeout=5)

    assert time.monotonic() - requested < 2.0
    assert "checkpoint" in record["status_reason"]
    assert len(checkpoint_keys(artifact_store(redis_client), job["id"])) == 1  # the newest only
    model_state, optimizer_state, meta = load_checkpoint(artifact_store(redis_client), job["id"])
    assert meta["epoch"] >= 2 and set(model_state) == {"0.W", "0.b", "1.W", "1.b"}
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in optimizer_state.values())
    assert store.events(job["id"])[-1][1]["status"] == "cancelled"


def test_a_diverging_job_fails_with_its_reason_and_the_worker_stays_healthy(
    redis_client, start_worker
):
    from worker.tasks import ping

    start_worker(concurrency=2, **FAST)
    spec = digits_spec(shards=2, epochs=3, optimizer={"type": "sgd", "lr": 1e20})

    record = wait_finished(redis_client, submit_job(redis_client, spec, "acme")["id"])

    assert record["status"] == "failed"
    assert "nan" in record["status_reason"].lower() or "inf" in record["status_reason"].lower()
    assert "epoch 1" in record["status_reason"]
    assert ping.delay("still here").get(timeout=10) == "still here"
    ok = wait_finished(redis_client, submit_job(redis_client, digits_spec(), "acme")["id"])
    assert ok["status"] == "succeeded"


def test_training_adds_no_redis_keys_or_memory_per_step(redis_client, start_worker):
    start_worker(concurrency=2, **FAST)
    job = submit_job(redis_client, digits_spec(shards=2, epochs=200, batch_size=16), tenant="acme")
    store = JobStore(redis_client)
    wait_until(lambda: store.get(job["id"])["step"] >= 100, 60, "100 steps")
    keys_early, memory_early = redis_client.dbsize(), redis_client.info("memory")["used_memory"]
    step_early = store.get(job["id"])["step"]

    wait_until(lambda: store.get(job["id"])["step"] >= step_early + 1000, 90, "1000 more steps")
    keys_late, memory_late = redis_client.dbsize(), redis_client.info("memory")["used_memory"]
    store.request_cancel(job["id"])
    wait_finished(redis_client, job["id"])

    assert abs(keys_late - keys_early) <= 2  # step lists exist for microseconds at most
    assert memory_late - memory_early < 256 * 1024, (memory_early, memory_late)


def test_a_succeeded_job_leaves_no_checkpoints(redis_client, start_worker):
    start_worker(concurrency=2, **FAST)
    spec = digits_spec(checkpoint_every=5)

    record = wait_finished(redis_client, submit_job(redis_client, spec, "acme")["id"])

    assert record["status"] == "succeeded", record["status_reason"]
    artifacts = artifact_store(redis_client)
    assert checkpoint_keys(artifacts, record["id"]) == []
    assert list(artifacts.backend.list(f"checkpoints/{record['id']}/")) == []


def test_finished_jobs_leave_no_celery_result_keys(redis_client, start_worker):
    # Celery kept a result key per task for a day: 1,531 of them after a fault campaign (issue 11)
    start_worker(concurrency=2, **FAST)

    record = wait_finished(redis_client, submit_job(redis_client, digits_spec(), "acme")["id"])

    assert record["status"] == "succeeded", record["status_reason"]
    assert redis_client.keys("celery-task-meta-*") == []

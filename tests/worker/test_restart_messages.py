"""What a restart and a resume say about where the next attempt starts: only what is true, with
epochs counted from 1 as everywhere else in gradq."""

from __future__ import annotations

import nnlib
from tests.worker.jobs_helpers import digits_spec
from worker.fence import AttemptFence
from worker.job_logs import read_logs
from worker.jobs import JobStore
from worker.recovery import restart_job
from worker.shard import checkpoint_position
from worker.storage.artifacts import ArtifactStore
from worker.storage.checkpoint_writer import CheckpointWriter
from worker.storage.filesystem import FileBackend


def running_job(redis_client) -> tuple[JobStore, str]:
    store = JobStore(redis_client)
    job = store.create(digits_spec(shards=1, epochs=2), "acme")["id"]
    store.transition(job, "running", expect_attempt=0)
    return store, job


def restart_lines(redis_client, job: str) -> list[str]:
    lines = read_logs(redis_client, job, count=1000)
    return [line["message"] for line in lines if line["message"].startswith("restarting")]


def test_a_restart_before_any_checkpoint_says_it_starts_from_the_start(redis_client):
    store, job = running_job(redis_client)

    record = restart_job(store, job, 0, "shard 0 died", enqueue=lambda job_id: None)

    assert record["status_reason"] == "restarting from the start (no checkpoint yet): shard 0 died"
    assert restart_lines(redis_client, job) == [
        "restarting from the start (no checkpoint yet) (restart 1 of at most 3): shard 0 died"
    ]


def test_a_restart_after_a_checkpoint_says_it_starts_from_it(redis_client, tmp_path):
    store, job = running_job(redis_client)
    artifacts = ArtifactStore(redis_client, FileBackend(tmp_path / "artifacts"))
    model = nnlib.build_model({"layers": [{"type": "dense", "units": 3}]}, (4,), seed=0)
    writer = CheckpointWriter(artifacts, job, keep=2, fence=AttemptFence(store, job, 0))
    writer.submit(model.state_dict(), {}, {"global_step": 10})
    writer.close()

    record = restart_job(store, job, 0, "shard 0 died", enqueue=lambda job_id: None, counted=False)

    assert record["status_reason"] == "restarting from the last checkpoint: shard 0 died"
    assert restart_lines(redis_client, job) == [
        "restarting from the last checkpoint (not counted as a restart; 0 so far): shard 0 died"
    ]


def test_a_checkpoints_position_counts_epochs_from_1():
    # meta["epoch"] counts the epochs done: an epoch-end save after 11 of them has epoch 11
    assert checkpoint_position({"epoch": 11, "batch": 0}) == "after epoch 11"
    # 30 batches into the 12th epoch (the dashboard and the job record say "epoch 12")
    assert checkpoint_position({"epoch": 11, "batch": 30}) == "epoch 12, after batch 30"

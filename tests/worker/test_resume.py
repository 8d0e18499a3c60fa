"""Resuming from a checkpoint ends with exactly the weights of an uninterrupted run.

Shards run in-process (threads, real Redis) so the interruption lands on a chosen step.
"""

from __future__ import annotations

import pytest
import redis

from tests.harness import run_in_threads, wait_until
from tests.worker.jobs_helpers import assert_same_weights, digits_spec, model_weights
from worker.collective.allreduce import data_client
from worker.config import Settings
from worker.job_logs import read_logs
from worker.jobs import JobStore
from worker.recovery import PeerLostError
from worker.runner import run_shard_task
from worker.storage import artifact_store
from worker.storage.checkpoints import checkpoints_key, load_checkpoint, load_checkpoint_meta

pytestmark = pytest.mark.integration


def run_attempt(
    url: str, job_id: str, attempt: int, num_shards: int, crash_at=None, published=None, before=None
) -> dict:
    """All shards of one attempt in threads; shard 1 'loses its peer' after step ``crash_at``,
    once the checkpoint of step ``published`` is published (shard 0 saves in the background,
    and the fence refuses a save that would land after the restart). ``before(shard)`` runs in
    the shard's thread before the shard task."""
    settings = Settings(redis_url=url, peer_timeout_seconds=5, heartbeat_seconds=0.3)
    outcomes, restarts = {}, []
    artifacts = artifact_store(redis.Redis.from_url(url))

    def newest_step():
        newest = load_checkpoint_meta(artifacts, job_id)
        return newest is not None and newest["global_step"] == published

    def hook_for(shard):
        def hook(step):
            if shard == 1 and step == crash_at:
                if published is not None:
                    wait_until(newest_step, 30, f"the checkpoint of step {published}")
                raise PeerLostError(0, None)

        return hook

    def shard(i):
        if before is not None:
            before(i)
        store = JobStore(redis.Redis.from_url(url))
        outcomes[i] = run_shard_task(
            store,
            data_client(url),
            settings,
            job_id,
            i,
            attempt,
            requeue=lambda delay: None,
            enqueue_start=restarts.append,
            step_hook=hook_for(i),
        )

    run_in_threads(shard, num_shards, timeout=120)
    return {"outcomes": outcomes, "restarts": restarts}


# 41 steps per epoch; checkpoints at multiples of 5 of the global step and at the epoch end
# (40, 41, then 45, ...): a crash at 44 resumes from the epoch end, one at 7 from a multiple
@pytest.mark.parametrize(("crash_at", "resume_step"), [(7, 5), (44, 41)])
def test_a_resumed_job_ends_with_the_uninterrupted_weights(
    redis_url, redis_client, crash_at, resume_step
):
    spec = digits_spec(shards=2, epochs=2, batch_size=32, checkpoint_every=5)
    store = JobStore(redis_client)
    clean = store.create(spec, "acme")["id"]
    run_attempt(redis_url, clean, 0, 2)

    interrupted = store.create(spec, "acme")["id"]
    first = run_attempt(redis_url, interrupted, 0, 2, crash_at, published=resume_step)
    assert first["outcomes"][1] == "restarted" and first["restarts"] == [interrupted]
    assert store.get(interrupted)["status"] == "queued"
    resumed_from = store.get(interrupted)
    _, _, meta = load_checkpoint(artifact_store(redis_client), interrupted)
    assert meta["global_step"] == resume_step
    run_attempt(redis_url, interrupted, 1, 2)

    a, b = store.get(clean), store.get(interrupted)
    assert a["status"] == b["status"] == "succeeded", b["status_reason"]
    assert b["restarts"] == 1 and resumed_from["attempt"] == 1
    assert_same_weights(
        model_weights(redis_client, b["model_id"]),
        model_weights(redis_client, a["model_id"]),
        rtol=0,
    )
    assert [h["train_loss"] for h in b["history"]] == pytest.approx(
        [h["train_loss"] for h in a["history"]], rel=1e-6
    )


def test_shards_that_resumed_from_different_checkpoints_restart_before_any_step(
    redis_url, redis_client
):
    spec = digits_spec(shards=2, epochs=2, batch_size=32, checkpoint_every=5)
    store = JobStore(redis_client)
    job = store.create(spec, "acme")["id"]
    run_attempt(redis_url, job, 0, 2, crash_at=12, published=10)  # keeps steps 5 and 10
    listing = checkpoints_key(job)
    newest = redis_client.rpop(listing)  # shard 0 sees step 5 as the newest...

    def stagger(shard):  # ...and shard 1, loading later, step 10
        if shard == 1:
            loaded = "weights from the checkpoint at step 5"
            wait_until(
                lambda: any(
                    loaded in line["message"] for line in read_logs(redis_client, job, count=1000)
                ),
                60,
                "shard 0 to load step 5",
            )
            redis_client.rpush(listing, newest)

    second = run_attempt(redis_url, job, 1, 2, before=stagger)

    record = store.get(job)
    assert set(second["outcomes"].values()) == {"restarted"}
    assert record["attempt"] == 2 and record["restarts"] == 2
    assert "resumed from different checkpoints: steps [5, 10]" in record["status_reason"]
    steps = [load_checkpoint_meta(artifact_store(redis_client), job)["global_step"]]
    assert steps == [10]  # attempt 1 trained no step on mixed weights, so saved nothing

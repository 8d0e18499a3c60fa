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
from worker.jobs import JobStore
from worker.recovery import PeerLostError
from worker.runner import run_shard_task
from worker.storage import artifact_store
from worker.storage.checkpoints import load_checkpoint, load_checkpoint_meta

pytestmark = pytest.mark.integration


def run_attempt(
    url: str, job_id: str, attempt: int, num_shards: int, crash_at=None, published=None
) -> dict:
    """All shards of one attempt in threads; shard 1 'loses its peer' after step ``crash_at``,
    once the checkpoint of step ``published`` is published (shard 0 saves in the background,
    and the fence refuses a save that would land after the restart)."""
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


# 41 steps per epoch; checkpoints every 5 steps and at the epoch end (step 41, then 46, ...)
@pytest.mark.parametrize(("crash_at", "resume_step"), [(7, 5), (45, 41)])
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

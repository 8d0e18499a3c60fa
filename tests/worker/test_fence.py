"""The attempt fence: once a job restarted, its old attempt's writers change nothing in Redis
(checkpoint list and records, progress, events, loss curve, logs, model, status, heartbeat) and
leave in the artifact store only unreferenced objects, which the collector removes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import nnlib
from tests.worker.jobs_helpers import digits_spec
from worker.config import Settings
from worker.fence import AttemptFence, StaleAttemptError
from worker.job_finish import finish_job
from worker.job_logs import read_logs
from worker.jobs import JobStore
from worker.loss_curve import LossRecorder, read_points
from worker.models_store import ModelStore
from worker.recovery import Heartbeat, alive_key, restart_job
from worker.replica_setup import Replica
from worker.runner import _fail
from worker.shard_context import ShardContext
from worker.storage.artifacts import ArtifactStore
from worker.storage.checkpoint_writer import CheckpointWriter
from worker.storage.checkpoints import load_checkpoint
from worker.storage.collector import collect
from worker.storage.filesystem import FileBackend

SETTINGS = Settings(heartbeat_seconds=0.5, peer_timeout_seconds=4)


def everything(redis) -> dict:
    """Every key's type and value (TTLs aside): what "nothing changed" is compared against."""
    readers = {
        b"string": redis.get,
        b"hash": redis.hgetall,
        b"list": lambda key: redis.lrange(key, 0, -1),
        b"set": redis.smembers,
        b"zset": lambda key: redis.zrange(key, 0, -1, withscores=True),
        b"stream": redis.xrange,
    }
    out = {}
    for key in redis.scan_iter(count=1000):
        kind = redis.type(key)
        out[key] = (kind, readers[kind](key))
    return out


@pytest.fixture
def running_job(redis_client, tmp_path):
    """A running 1-shard job whose attempt 0 wrote a checkpoint, progress and loss points."""
    store = JobStore(redis_client)
    job = store.create(digits_spec(shards=1, epochs=2), "acme")["id"]
    store.transition(job, "running", expect_attempt=0)
    artifacts = ArtifactStore(redis_client, FileBackend(tmp_path / "artifacts"))
    fence = AttemptFence(store, job, 0)
    model = nnlib.build_model({"layers": [{"type": "dense", "units": 3}]}, (4,), seed=0)
    writer = CheckpointWriter(artifacts, job, keep=2, fence=fence)
    writer.submit(model.state_dict(), {}, {"global_step": 10})
    writer.close()
    curve = LossRecorder(fence, job, steps_total=100)
    curve.add(1, 0.5)
    curve.flush()
    fence.update({"step": 10})
    return SimpleNamespace(
        store=store, job=job, artifacts=artifacts, fence=fence, model=model, curve=curve
    )


def restart(job) -> None:
    """What the live peers do when this shard's host falls silent: attempt 0 -> 1."""
    assert restart_job(job.store, job.job, 0, "shard 0 died", enqueue=lambda job_id: None)


def test_every_write_of_a_stale_attempt_is_refused_and_changes_nothing(running_job, redis_client):
    job = running_job
    writer = CheckpointWriter(job.artifacts, job.job, keep=2, fence=job.fence)
    restart(job)
    before = everything(redis_client)
    objects_before = {stat.key for stat in job.artifacts.backend.list()}

    writer.submit(job.model.state_dict(), {}, {"global_step": 20})  # uploads, then is refused
    with pytest.raises(StaleAttemptError):
        writer.close()
    with pytest.raises(StaleAttemptError):
        job.fence.update({"step": 20, "progress": 0.2})
    with pytest.raises(StaleAttemptError):
        job.fence.update({}, event="status", status="failed", reason="stale")
    job.curve.add(2, 0.25)
    with pytest.raises(StaleAttemptError):
        job.curve.flush()
    with pytest.raises(StaleAttemptError):
        LossRecorder(job.fence, job.job, steps_total=100, resumed_step=0)
    with pytest.raises(StaleAttemptError):
        Heartbeat(job.fence, 0, SETTINGS).beat()
    job.fence.log("a line from the past", shard=0)
    assert _fail(job.fence, 0, ValueError("late"), SETTINGS) == "failed"  # tried, refused

    assert everything(redis_client) == before
    added = {stat.key for stat in job.artifacts.backend.list()} - objects_before
    assert len(added) == 1  # the refused checkpoint's upload: no record points at it
    future = max(stat.modified for stat in job.artifacts.backend.list()) + 1
    assert collect(job.artifacts, grace_seconds=0, now=future).unreferenced == list(added)
    assert {stat.key for stat in job.artifacts.backend.list()} == objects_before


def test_a_stale_attempt_publishes_no_model_and_does_not_finish_the_job(running_job, redis_client):
    job = running_job
    restart(job)
    before = everything(redis_client)
    ctx = ShardContext(job.store, None, job.job, 0, 0, 1, SETTINGS)
    data = SimpleNamespace(x_test=None, preprocessing=None, classes=None, num_classes=3)
    replica = Replica(job.store.get(job.job)["spec"], data, job.model, None, None, None, 100,
                      {}, artifacts=job.artifacts)  # fmt: skip

    with pytest.raises(StaleAttemptError):
        finish_job(ctx, replica, None, data, stopped_early=False)

    assert everything(redis_client) == before  # no model, version, record, event or status


def test_a_model_uploaded_before_the_restart_is_never_published(running_job, redis_client):
    job = running_job
    models = ModelStore(redis_client, job.artifacts)
    pending = models.upload(job.model, tenant="acme", job_id=job.job, name="m", version=1)
    restart(job)
    before = everything(redis_client)

    with pytest.raises(StaleAttemptError):
        job.fence.update(
            {"model_id": pending.metadata["id"]},
            event="status",
            status="succeeded",
            also=lambda pipe: models.publish(pending, pipe),
        )

    assert everything(redis_client) == before
    assert models.get(pending.metadata["id"]) is None


def test_a_restart_landing_between_the_check_and_the_write_discards_the_write(
    running_job, redis_client
):
    job = running_job
    key = f"gradq:job:{job.job}:probe"

    def plan(pipe):  # runs after the fence read the record and found attempt 0 current
        if job.store.get(job.job)["attempt"] == 0:
            restart(job)  # another client moves the attempt on before EXEC
        return lambda pipe: pipe.set(key, "stale")

    with pytest.raises(StaleAttemptError):
        job.fence.commit_after([], plan)

    assert redis_client.get(key) is None
    assert job.store.get(job.job)["attempt"] == 1


def test_the_attempt_after_the_restart_writes_as_before(running_job, redis_client):
    job = running_job
    restart(job)
    fence = AttemptFence(job.store, job.job, 1)

    Heartbeat(fence, 0, SETTINGS).beat()
    fence.update({"step": 11})
    curve = LossRecorder(fence, job.job, steps_total=100, resumed_step=10)
    curve.add(11, 0.125)
    curve.flush()
    writer = CheckpointWriter(job.artifacts, job.job, keep=2, fence=fence)
    writer.submit(job.model.state_dict(), {}, {"global_step": 11})
    writer.close()
    fence.log("resumed", shard=0)

    assert job.store.get(job.job)["step"] == 11
    assert redis_client.exists(alive_key(job.job))
    assert read_points(redis_client, job.job)[:, :2].tolist() == [[1, 0.5], [11, 0.125]]
    assert load_checkpoint(job.artifacts, job.job)[2]["global_step"] == 11
    assert read_logs(redis_client, job.job)[-1]["message"] == "resumed"

"""A Redis restart mid-job: the worker rides it out and the job ends with the uninterrupted weights.

A private redis-server with an append-only file is killed while a 2-shard job trains, stays down
until the worker has seen the outage, and is started again with the same command line (same port,
same data), as a service manager would.
"""

from __future__ import annotations

import signal

import pytest

from tests.harness import CeleryWorker, RedisServer, wait_until
from tests.worker.jobs_helpers import (
    FAST,
    assert_same_weights,
    model_weights,
    wait_finished,
)
from tests.worker.test_recovery import long_spec, wait_step
from worker.jobs import JobStore
from worker.submit import submit_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def restartable_redis(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True)
    yield server
    server.stop()


def start_worker_on(server: RedisServer, log, transport: str) -> CeleryWorker:
    from worker.celery_app import app, configure
    from worker.config import Settings

    configure(app, Settings(redis_url=server.url))  # submit_job enqueues through it
    env = FAST | {"GRADQ_ALLREDUCE_TRANSPORT": transport}
    worker = CeleryWorker(server.url, concurrency=2, log_path=log, **env)
    wait_until(lambda: app.control.ping(destination=[worker.name], timeout=0.5), 30, "the worker")
    return worker


# gradients through Redis: the shards lose Redis mid-step and restart from the checkpoint;
# through shared memory: they may ride the outage out in place (their job-state client retries)
@pytest.mark.parametrize(
    ("sig", "transport"),
    [(signal.SIGKILL, "redis"), (signal.SIGTERM, "shm")],
    ids=["SIGKILL-redis-transport", "SIGTERM-shm-transport"],
)
def test_a_redis_restart_mid_job_keeps_the_worker_and_the_weights(
    restartable_redis, tmp_path, sig, transport
):
    server, log = restartable_redis, tmp_path / "worker.log"
    worker = start_worker_on(server, log, transport)
    try:
        job = submit_job(server.client, long_spec(epochs=40), tenant="acme")
        wait_step(server.client, job["id"], 60)

        before = JobStore(server.client).get(job["id"])
        server.kill(sig)
        wait_until(lambda: "Cannot connect to redis" in log.read_text(), 30, "the worker to notice")
        server.start()
        record = wait_finished(server.client, job["id"], timeout=120)

        assert worker.process.poll() is None, "the worker exited during the outage"
        assert "Unrecoverable error" not in log.read_text()
        assert record["status"] == "succeeded", record["status_reason"]
        assert before["status"] == "running" and before["step"] < record["steps_total"] / 2
        if transport == "redis":  # a step's exchange failed: one restart from the checkpoint
            assert record["restarts"] == 1
            events = JobStore(server.client).events(job["id"], count=10_000)
            reasons = [event.get("status_reason") or "" for _, event in events]
            assert any(r.startswith("restarting from the last checkpoint: Redis") for r in reasons)
        clean = wait_finished(
            server.client, submit_job(server.client, long_spec(epochs=40), "acme")["id"], 120
        )
        assert clean["restarts"] == 0
        assert_same_weights(
            model_weights(server.client, record["model_id"]),
            model_weights(server.client, clean["model_id"]),
            rtol=1e-6,
        )
    finally:
        worker.stop()

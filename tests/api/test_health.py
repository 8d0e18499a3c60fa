"""/healthz, /readyz (Redis + a live worker), /metrics (requests, jobs, queue depth)."""

from __future__ import annotations

import os
import signal

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import get_submitter
from tests.api.specs import digits_spec
from tests.harness import free_port, wait_until
from worker.config import Settings


def test_readyz_is_503_when_redis_is_unreachable():
    dead = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(dead)) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json()["detail"].startswith("redis")


def test_readyz_is_503_without_a_worker(anonymous):
    response = anonymous.get("/readyz")
    assert response.status_code == 503
    assert response.json()["detail"] == "workers: no live worker consumes the gradq.training queue"


@pytest.mark.integration
def test_readyz_is_ready_once_a_training_worker_heartbeats(anonymous, start_worker):
    worker = start_worker(concurrency=1)
    response = wait_until(
        lambda: (r := anonymous.get("/readyz")).status_code == 200 and r, 30, "readiness"
    )
    assert response.json() == {"status": "ready", "workers": [worker.name]}


@pytest.mark.integration
def test_readyz_is_503_with_only_a_control_worker(anonymous, start_worker, redis_client, settings):
    from worker.worker_registry import live_workers

    start_worker(concurrency=1, queues="gradq.control")
    wait_until(lambda: live_workers(redis_client, settings), 30, "the control worker's heartbeat")

    response = anonymous.get("/readyz")

    assert response.status_code == 503 and response.json()["detail"].startswith("workers")


@pytest.mark.integration
def test_readyz_is_503_once_the_only_training_worker_is_gone(anonymous, start_worker):
    worker = start_worker(concurrency=1)
    wait_until(lambda: anonymous.get("/readyz").status_code == 200, 30, "readiness")

    os.killpg(worker.process.pid, signal.SIGKILL)  # no clean shutdown: its heartbeat ages out

    wait_until(lambda: anonymous.get("/readyz").status_code == 503, 30, "not ready")


def test_metrics_count_requests_by_route_template_and_jobs_by_status(app, alice):
    # the real submit_job: with no worker running, its start_job task waits in the queue
    app.dependency_overrides.pop(get_submitter)
    job_id = alice.post("/v1/jobs", json=digits_spec()).json()["id"]
    alice.get(f"/v1/jobs/{job_id}")
    alice.get("/v1/jobs/job_nothere")
    response = alice.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()

    def value(prefix: str) -> float:
        return float(next(line for line in lines if line.startswith(prefix)).split()[-1])

    assert (
        value('gradq_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="200"}') == 1
    )
    assert (
        value('gradq_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404"}') == 1
    )
    assert value('gradq_http_request_duration_seconds_count{method="POST",route="/v1/jobs"}') == 1
    assert value('gradq_jobs{status="queued"}') == 1
    assert value('gradq_queue_depth{queue="gradq.control"}') == 1
    assert value('gradq_queue_depth{queue="gradq.training"}') == 0


def test_a_redis_outage_is_a_503_with_detail(settings):
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with TestClient(
        create_app(down), headers={"Authorization": "Bearer key-alice-0123456789"}
    ) as c:
        response = c.get("/v1/jobs")
        assert response.status_code == 503 and response.json()["detail"].startswith("redis")


def test_metrics_count_the_docs_pages_under_their_own_routes(anonymous):
    for path in ("/docs", "/openapi.json", "/no-such-page"):  # /redoc is off (no local assets)
        anonymous.get(path)

    text = anonymous.get("/metrics").text

    for path in ("/docs", "/openapi.json"):
        assert f'gradq_http_requests_total{{method="GET",route="{path}",status="200"}} 1.0' in text
    assert 'route="<unmatched>",status="404"} 1.0' in text
    assert 'route="<unmatched>",status="200"' not in text

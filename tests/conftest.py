"""Shared fixtures: a private redis-server, a Celery app pointed at it, real worker processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import CeleryWorker, RedisServer, stop_workers, wait_until

# Tests (and the workers they start, which inherit the environment) keep artifacts in a private
# folder, never in the user's data folder or a store configured in their shell. Set at import:
# the API conftest imports modules that read the settings before any pytest_configure hook runs.
_ARTIFACT_ROOT = Path(tempfile.mkdtemp(prefix="gradq-test-artifacts-"))
os.environ["GRADQ_ARTIFACT_URL"] = _ARTIFACT_ROOT.as_uri()
os.environ.pop("GRADQ_S3_ENDPOINT_URL", None)


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_ARTIFACT_ROOT, ignore_errors=True)


def pytest_collection_modifyitems(config, items) -> None:
    # under pytest-xdist (--dist loadgroup), the multi-host tests run one after another on one
    # worker: each builds four hosts whose links and peer timeouts assume the cores are theirs
    for item in items:
        if item.get_closest_marker("multihost"):
            item.add_marker(pytest.mark.xdist_group("multihost"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """One private redis-server for the whole session (never the one on 6379)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One SeaweedFS S3 server (``weed server -s3``) for the whole session, started on first use."""
    from tests.seaweed import SeaweedS3

    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The private server's URL, emptied before each test so tests cannot see each other."""
    redis_server.client.flushall()
    return redis_server.url


@pytest.fixture
def redis_client(redis_server: RedisServer, redis_url: str):
    return redis_server.client


@pytest.fixture
def celery_app(redis_url: str):
    """The project's Celery app pointed at the private Redis for this test."""
    from worker.celery_app import app, configure
    from worker.config import Settings

    configure(app, Settings(redis_url=redis_url))
    return app


@pytest.fixture
def start_worker(redis_url: str, celery_app, tmp_path):
    """Factory for real Celery worker subprocesses; all are stopped at teardown."""
    started: list[CeleryWorker] = []

    def start(
        concurrency: int = 2, wait: bool = True, queues: str | None = None, **env: str
    ) -> CeleryWorker:
        log = tmp_path / f"worker{len(started)}.log"
        worker = CeleryWorker(
            redis_url, concurrency=concurrency, queues=queues, log_path=log, **env
        )
        started.append(worker)
        if wait:
            wait_until(
                lambda: celery_app.control.ping(destination=[worker.name], timeout=0.5),
                30,
                f"celery worker {worker.name} to answer ping",
            )
        return worker

    yield start
    stop_workers(started)

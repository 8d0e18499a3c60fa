"""Dashboard fixtures: the app on the private Redis with two tenants' keys (no workers)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import get_submitter
from worker.config import Settings
from worker.jobs import JobStore

KEY_A, KEY_B = "key-alice-0123456789", "key-bob-0123456789"


@pytest.fixture
def app(redis_url, tmp_path):
    """Real stores; submitted jobs are created in the real JobStore and stay queued."""
    settings = Settings(
        redis_url=redis_url,
        api_keys=f"alice:{KEY_A},bob:{KEY_B}",
        data_dir=tmp_path / "data",
        session_seconds=600,
    )
    application = create_app(settings)
    application.dependency_overrides[get_submitter] = lambda: (
        JobStore(application.state.redis).create
    )
    yield application
    application.state.redis.close()  # no idle connection left for later tests' CLIENT LIST


@pytest.fixture
def browser(app):
    """A client without any Authorization header, like a browser (it keeps cookies)."""
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


def log_in(client: TestClient, key: str) -> str:
    """Log ``client`` in with ``key``; returns the page's CSRF token."""
    response = client.post("/ui/login", data={"api_key": key, "next": "/ui/jobs"})
    assert response.status_code == 200, response.text
    return re.search(r'name="csrf-token" content="([^"]+)"', response.text).group(1)

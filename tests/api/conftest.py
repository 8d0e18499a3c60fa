"""API fixtures: an app on the private Redis with two tenants' keys, and clients for each."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import job_commands, model_commands, remote, study
from api.cli.main import app as cli
from api.client import GradqClient
from api.deps import get_starter, get_submitter
from worker.config import Settings

KEY_A, KEY_B = "key-alice-0123456789", "key-bob-0123456789"


@pytest.fixture
def settings(redis_url, tmp_path) -> Settings:
    return Settings(
        redis_url=redis_url,
        api_keys=f"alice:{KEY_A},bob:{KEY_B}",
        max_active_jobs_per_tenant=3,
        max_predict_batch=8,
        max_request_bytes=64 * 1024,
        max_dataset_bytes=256 * 1024,
        max_parameters=100_000,
        data_dir=tmp_path / "data",
    )


@pytest.fixture
def app(settings):
    """The app with the real stores; only Celery enqueueing is replaced (no workers here):
    submitted jobs are created in the real JobStore and stay queued."""
    from worker.jobs import JobStore

    application = create_app(settings)
    application.dependency_overrides[get_submitter] = lambda: (
        JobStore(application.state.redis).create
    )
    application.state.started = []  # job ids a resume would have sent to start_job
    application.dependency_overrides[get_starter] = lambda: application.state.started.append
    return application


def _client(app, key: str | None) -> TestClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return TestClient(app, headers=headers)


@pytest.fixture
def alice(app):
    with _client(app, KEY_A) as client:
        yield client


@pytest.fixture
def bob(app):
    with _client(app, KEY_B) as client:
        yield client


@pytest.fixture
def anonymous(app):
    with _client(app, None) as client:
        yield client


@pytest.fixture
def run(alice, monkeypatch):
    """``run(*args)`` -> CliRunner result of ``gradq <args>`` as tenant alice: the CLI's HTTP
    client is pointed at the app in-process (``TestClient`` is an ``httpx.Client``)."""

    def client() -> GradqClient:
        api = GradqClient("http://testserver", KEY_A)
        api._http = alice  # the app in-process, alice's key in its headers
        api.close = lambda: None  # alice outlives each command
        return api

    console = remote.make_console()  # CliRunner: not a terminal
    for module in (remote, job_commands, model_commands, study):  # each imported them by name
        monkeypatch.setattr(module, "client", client)
        monkeypatch.setattr(module, "console", console)
    return lambda *args: CliRunner().invoke(cli, list(args))

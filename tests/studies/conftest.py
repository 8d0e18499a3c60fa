"""Study fixtures: the real API (uvicorn) with two tenants, real workers, digits studies."""

from __future__ import annotations

import pytest

from api.client import GradqClient
from tests.api.live import LiveApi
from tests.harness import wait_until
from tests.worker.jobs_helpers import FAST

KEY_A, KEY_B = "study-key-alice-0123", "study-key-bob-012345"
API_ENV = {"GRADQ_API_KEYS": f"alice:{KEY_A},bob:{KEY_B}"}
FINAL = ("succeeded", "failed", "cancelled")


def digits_study(**overrides) -> dict:
    """A study of a small digits MLP: epochs of ~100 steps, so an epoch event arrives while the
    job still runs (what pruning needs), yet a trial takes about a second."""
    study = {
        "name": "digits-study",
        "base_spec": {
            "dataset": {"name": "digits"},
            "model": {
                "layers": [
                    {"type": "dense", "units": 32, "activation": "relu"},
                    {"type": "dense", "units": 10},
                ]
            },
            "optimizer": {"type": "adam", "lr": 0.01},
            "batch_size": 16,
            "epochs": 3,
            "shards": 1,
            "seed": 0,
        },
        "space": {
            "optimizer.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "model.layers[0].units": {"type": "int", "low": 8, "high": 32, "step": 8},
        },
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "max_trials": 4,
        "max_parallel": 2,
        "max_failed": 0,
        "sampler": "random",
        "pruner": "none",
        "seed": 1,
    }
    study.update(overrides)
    return study


@pytest.fixture
def live_api(redis_url, tmp_path):
    server = LiveApi(redis_url, tmp_path / "api.log", **API_ENV)
    yield server
    server.stop()


@pytest.fixture
def alice(live_api):
    with GradqClient(live_api.url, KEY_A) as client:
        yield client


@pytest.fixture
def bob(live_api):
    with GradqClient(live_api.url, KEY_B) as client:
        yield client


@pytest.fixture
def workers(start_worker):
    """A factory of real workers with fast failure detection (one BLAS thread each)."""
    return lambda concurrency=2, **env: start_worker(concurrency=concurrency, **FAST, **env)


def wait_study(client: GradqClient, study_id: str, timeout: float = 120) -> dict:
    """The study once it reached a final status (AssertionError with its record otherwise)."""
    try:
        return wait_until(
            lambda: (s := client.study(study_id))["status"] in FINAL and s, timeout, "the study"
        )
    except TimeoutError:
        raise AssertionError(f"study stuck: {client.study(study_id)}") from None


def trial_jobs(client: GradqClient, study_id: str) -> list[dict]:
    """The study's trial jobs as ``/v1/jobs`` lists them."""
    jobs = client.jobs(limit=200)["jobs"]
    return [job for job in jobs if job.get("study_id") == study_id]

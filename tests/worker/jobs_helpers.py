"""Helpers shared by the worker integration tests: specs, waiting on jobs, reading weights."""

from __future__ import annotations

import numpy as np

from tests.harness import wait_until
from worker.jobs import TERMINAL, JobStore
from worker.models_store import ModelStore

# small settings so failures are detected in seconds, one BLAS thread per shard process
FAST = {
    "GRADQ_PEER_TIMEOUT_SECONDS": "4",
    "GRADQ_HEARTBEAT_SECONDS": "0.3",
    "GRADQ_BLAS_THREADS": "1",
}


def digits_spec(shards: int = 2, **overrides) -> dict:
    spec = {
        "name": "digits-mlp",
        "dataset": {"name": "digits"},
        "model": {
            "layers": [
                {"type": "dense", "units": 32, "activation": "relu"},
                {"type": "dense", "units": 10},
            ]
        },
        "loss": "cross_entropy",
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9},
        "batch_size": 64,
        "epochs": 1,
        "shards": shards,
        "seed": 7,
    }
    spec.update(overrides)
    return spec


def blobs_spec(shards: int = 2, **overrides) -> dict:
    """A job that loads in milliseconds (no scikit-learn import): for scheduling tests."""
    return digits_spec(
        shards,
        dataset={"name": "blobs"},
        model={
            "layers": [
                {"type": "dense", "units": 8, "activation": "relu"},
                {"type": "dense", "units": 3},
            ]
        },
        **overrides,
    )


def wait_status(redis_client, job_id: str, statuses, timeout: float = 60) -> dict:
    store = JobStore(redis_client)

    def reached():
        record = store.get(job_id)
        return record if record["status"] in statuses else None

    try:
        return wait_until(reached, timeout, f"job {job_id} to reach {statuses}")
    except TimeoutError:
        raise AssertionError(f"job stuck: {store.get(job_id)}") from None


def wait_finished(redis_client, job_id: str, timeout: float = 60) -> dict:
    return wait_status(redis_client, job_id, TERMINAL, timeout)


def model_weights(redis_client, model_id: str) -> dict[str, np.ndarray]:
    model, _ = ModelStore(redis_client).load_model(model_id)
    return model.parameters()


def assert_identical_weights(redis_client, a: dict, b: dict) -> None:
    """The models of job records ``a`` and ``b`` hold the same parameters, bit for bit."""
    first = model_weights(redis_client, a["model_id"])
    second = model_weights(redis_client, b["model_id"])
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def assert_same_weights(a: dict, b: dict, rtol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        scale = max(float(np.abs(b[name]).max()), 1e-12)
        error = float(np.abs(a[name] - b[name]).max()) / scale
        assert error <= rtol, f"{name}: max relative difference {error:.2e} > {rtol:.0e}"

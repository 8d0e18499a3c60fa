"""End to end on both backends, through the real API (uvicorn) and real Celery workers: upload a
data set, train 2 shards, SIGKILL one, resume from the stored checkpoint to bit-identical weights,
predict, delete, and see every object go. And Redis stays small while the bytes are large."""

from __future__ import annotations

import os
import secrets
import signal
import time

import httpx
import numpy as np
import pytest

from tests.api.live import LiveApi
from tests.harness import npz_bytes, wait_until
from tests.worker.jobs_helpers import FAST, wait_finished
from worker.jobs import JobStore
from worker.models_store import ModelStore
from worker.storage.artifacts import ArtifactStore
from worker.storage.collector import collect
from worker.storage.filesystem import FileBackend
from worker.storage.s3 import S3Backend

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(params=["file", "s3"])
def store_env(request, tmp_path) -> tuple[dict, object]:
    """(environment for the API and workers, the same backend seen from this process)."""
    env = {"GRADQ_DATA_DIR": str(tmp_path / "cache")}
    if request.param == "file":
        root = tmp_path / "store"
        return env | {"GRADQ_ARTIFACT_URL": root.as_uri()}, FileBackend(root)
    from tests.seaweed import BUCKET

    server = request.getfixturevalue("s3_server")
    prefix = f"e2e-{secrets.token_hex(6)}"
    env |= server.env() | {"GRADQ_ARTIFACT_URL": f"s3://{BUCKET}/{prefix}"}
    return env, S3Backend(server.client, BUCKET, prefix)


@pytest.fixture
def stack(store_env, redis_url, redis_client, start_worker, tmp_path):
    env, backend = store_env
    api = LiveApi(redis_url, tmp_path / "api.log", **env)
    worker = start_worker(concurrency=2, **FAST, **env)
    yield httpx.Client(base_url=api.url, timeout=60), worker, backend
    api.stop()


def learnable_upload(n: int, features: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = np.argmax(x @ rng.standard_normal((features, 4)), axis=1)
    return npz_bytes(x_train=x, y_train=y)


def spec_for(dataset_id: str, **overrides) -> dict:
    # ~113 steps per epoch on 2 shards, checkpoints every 25: a kill at step 60 lands mid-job
    return {
        "dataset": {"id": dataset_id},
        "model": {
            "layers": [
                {"type": "dense", "units": 16, "activation": "relu"},
                {"type": "dense", "units": 4},
            ]
        },
        "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
        "batch_size": 16,
        "epochs": 12,
        "shards": 2,
        "seed": 7,
        "checkpoint_every": 25,
    } | overrides


def keys(backend, prefix: str = "") -> list[str]:
    return sorted(s.key for s in backend.list(prefix))


def test_upload_train_kill_resume_predict_delete_on_each_backend(stack, redis_client):
    api, worker, backend = stack
    uploaded = api.post("/v1/datasets", files={"file": ("points.npz", learnable_upload(2000, 32))})
    assert uploaded.status_code == 201, uploaded.text
    dataset_id = uploaded.json()["id"]
    assert keys(backend, f"datasets/{dataset_id}/") != []

    job_id = api.post("/v1/jobs", json=spec_for(dataset_id)).json()["id"]
    store = JobStore(redis_client)
    wait_until(lambda: (store.get(job_id)["step"] or 0) >= 60, 60, "step 60")
    assert keys(backend, f"checkpoints/{job_id}/") != []  # checkpoints are objects, not Redis
    os.kill(worker.child_pids()[0], signal.SIGKILL)
    resumed = wait_finished(redis_client, job_id, timeout=120)
    clean = wait_finished(
        redis_client, api.post("/v1/jobs", json=spec_for(dataset_id)).json()["id"]
    )

    assert resumed["status"] == clean["status"] == "succeeded", resumed["status_reason"]
    assert resumed["restarts"] == 1 and clean["restarts"] == 0
    artifacts = ArtifactStore(redis_client, backend)
    models = ModelStore(redis_client, artifacts)
    a = models.load_model(resumed["model_id"])[0].parameters()
    b = models.load_model(clean["model_id"])[0].parameters()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)  # bit-identical
    # succeeded jobs keep no checkpoint; the kill may have left an upload without its record,
    # which only the collector removes (after the grace period)
    assert all(artifacts.record(key) is None for key in keys(backend, "checkpoints/"))
    collect(artifacts, grace_seconds=3600, now=time.time() + 3601)
    assert keys(backend, "checkpoints/") == []

    x = np.random.default_rng(1).standard_normal((3, 32)).tolist()
    predicted = api.post(f"/v1/models/{resumed['model_id']}/predict", json={"inputs": x})
    assert predicted.status_code == 200, predicted.text

    for model_id in (resumed["model_id"], clean["model_id"]):
        assert api.delete(f"/v1/models/{model_id}").status_code == 204
    assert api.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert keys(backend) == []
    assert redis_client.hlen("gradq:artifacts") == 0


def test_a_5m_parameter_model_and_a_20mb_data_set_grow_redis_by_less_than_1mb(stack, redis_client):
    api, _, backend = stack
    content = learnable_upload(5000, 1000)  # 20 MB of float32 features
    assert len(content) > 20_000_000
    before = redis_client.info("memory")["used_memory"]

    dataset_id = api.post("/v1/datasets", files={"file": ("wide.npz", content)}).json()["id"]
    layers = [
        {"type": "dense", "units": 4096, "activation": "relu"},
        {"type": "dense", "units": 256, "activation": "relu"},
        {"type": "dense", "units": 4},
    ]
    spec = spec_for(
        dataset_id, model={"layers": layers}, epochs=1, batch_size=500, checkpoint_every=None
    )
    job = wait_finished(redis_client, api.post("/v1/jobs", json=spec).json()["id"], timeout=240)
    after = redis_client.info("memory")["used_memory"]

    assert job["status"] == "succeeded", job["status_reason"]
    model = api.get(f"/v1/models/{job['model_id']}").json()
    assert model["num_parameters"] >= 5_000_000
    assert keys(backend, "models/") == [f"models/{job['model_id']}.npz"]
    assert after - before < 1024 * 1024, (before, after)

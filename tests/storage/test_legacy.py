"""Models and data sets the previous version stored in Redis stay readable and move to the
artifact store: on first access, or all at once with ``gradq migrate``."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import nnlib
from tests.datasets.test_store import _upload
from worker.datasets import DatasetStore
from worker.datasets.store import PREFIX, RedisChunkedBlobs
from worker.models_store import ModelStore, weights_key
from worker.storage.datasets import ArtifactBlobs
from worker.storage.migrate import migrate_legacy

pytestmark = pytest.mark.integration

SPEC = {"layers": [{"type": "dense", "units": 3}]}


def legacy_model(redis_client, model_id: str = "mdl_0123456789abcdef") -> nnlib.Model:
    """A model written the way the previous ModelStore wrote it (weights as a Redis value)."""
    model = nnlib.build_model(SPEC, (4,), seed=3)
    buffer = io.BytesIO()
    nnlib.save(buffer, model)
    metadata = {"id": model_id, "tenant": "acme", "job_id": "job_1", "input_shape": [4]}
    redis_client.set(f"gradq:model:{model_id}", json.dumps(metadata))
    redis_client.set(f"gradq:model:{model_id}:weights", buffer.getvalue())
    redis_client.zadd("gradq:tenant:acme:models", {model_id: 1.0})
    return model


def legacy_dataset(redis_client):
    uploaded = _upload(n=40)
    info = DatasetStore(redis_client, RedisChunkedBlobs(redis_client, chunk_bytes=10_000)).put(
        "acme", uploaded
    )
    return uploaded, info


def test_a_legacy_model_loads_and_moves_to_the_store_on_first_access(artifacts, redis_client):
    original = legacy_model(redis_client)
    models = ModelStore(redis_client, artifacts)

    loaded, metadata = models.load_model("mdl_0123456789abcdef")

    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(loaded.predict(x), original.predict(x))
    assert metadata["id"] == "mdl_0123456789abcdef"
    assert not redis_client.exists("gradq:model:mdl_0123456789abcdef:weights")
    assert artifacts.record(weights_key("mdl_0123456789abcdef")) is not None
    assert models.get("mdl_0123456789abcdef")["weights_key"] == weights_key("mdl_0123456789abcdef")
    again, _ = models.load_model("mdl_0123456789abcdef")  # now from the store
    np.testing.assert_array_equal(again.predict(x), original.predict(x))


def test_a_legacy_data_set_reads_and_moves_to_the_store_on_first_access(artifacts, redis_client):
    uploaded, info = legacy_dataset(redis_client)
    datasets = DatasetStore(redis_client, ArtifactBlobs(artifacts))

    arrays = datasets.arrays(info["id"])

    for name, array in uploaded.arrays.items():
        np.testing.assert_array_equal(arrays[name], array)
    assert redis_client.keys(f"{PREFIX}{info['id']}:*") == []
    assert artifacts.record(f"datasets/{info['id']}/x_train")["size"] == arrays["x_train"].nbytes


def test_migrate_moves_every_legacy_artifact_once(artifacts, backend, redis_client):
    legacy_model(redis_client)
    uploaded, info = legacy_dataset(redis_client)

    first = migrate_legacy(redis_client, artifacts)
    second = migrate_legacy(redis_client, artifacts)

    assert (first.models, first.dataset_arrays) == (1, len(uploaded.arrays))
    assert (second.models, second.dataset_arrays) == (0, 0)
    assert redis_client.keys("gradq:model:*:weights") == []
    assert redis_client.keys(f"{PREFIX}{info['id']}:*") == []
    assert len(list(backend.list())) == 1 + len(uploaded.arrays)
    arrays = DatasetStore(redis_client, ArtifactBlobs(artifacts)).arrays(info["id"])
    np.testing.assert_array_equal(arrays["x_train"], uploaded.arrays["x_train"])


def test_the_migrate_command_reports_what_it_moved(redis_url, redis_client, tmp_path, monkeypatch):
    from api.cli.main import app
    from worker.config import get_settings

    legacy_model(redis_client)
    monkeypatch.setenv("GRADQ_REDIS_URL", redis_url)
    monkeypatch.setenv("GRADQ_ARTIFACT_URL", (tmp_path / "store").as_uri())
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["migrate"])
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    assert "moved 1 models and 0 data set arrays" in result.output
    assert (tmp_path / "store" / weights_key("mdl_0123456789abcdef")).is_file()

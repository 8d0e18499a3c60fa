"""Models and data sets through the artifact store (both backends): Redis holds only records,
deletes remove the objects, damaged weights are an error naming the object."""

from __future__ import annotations

import time

import numpy as np
import pytest

import nnlib
from tests.datasets.test_store import _upload
from tests.storage.conftest import overwrite
from worker.datasets import DatasetStore
from worker.models_store import ModelStore, weights_key
from worker.storage.base import ArtifactCorruptError
from worker.storage.collector import collect
from worker.storage.datasets import ArtifactBlobs

pytestmark = pytest.mark.integration

SPEC = {
    "layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 3}]
}


def test_model_weights_live_in_the_store_and_redis_keeps_only_a_record(
    artifacts, backend, redis_client
):
    models = ModelStore(redis_client, artifacts)
    model = nnlib.build_model(SPEC, (5,), seed=1)

    saved = models.save(model, tenant="acme", job_id="job_1")
    loaded, _ = models.load_model(saved["id"])

    record = artifacts.record(weights_key(saved["id"]))
    assert record["size"] == saved["size_bytes"] and len(record["sha256"]) == 64
    assert [s.key for s in backend.list()] == [weights_key(saved["id"])]
    assert not redis_client.exists(f"gradq:model:{saved['id']}:weights")
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_damaged_model_weights_are_an_error_naming_the_object(artifacts, backend, redis_client):
    models = ModelStore(redis_client, artifacts)
    saved = models.save(nnlib.build_model(SPEC, (5,), seed=1), tenant="acme", job_id="job_1")
    good = bytes(artifacts.read(weights_key(saved["id"])))
    flipped = good[:-100] + bytes([good[-100] ^ 1]) + good[-99:]
    overwrite(backend, weights_key(saved["id"]), flipped)

    with pytest.raises(ArtifactCorruptError, match=weights_key(saved["id"])):
        models.load_model(saved["id"])


def test_deleting_a_model_removes_its_object(artifacts, backend, redis_client):
    models = ModelStore(redis_client, artifacts)
    saved = models.save(nnlib.build_model(SPEC, (5,), seed=1), tenant="acme", job_id="job_1")

    assert models.delete(saved["id"]) is True

    assert list(backend.list()) == [] and artifacts.record(weights_key(saved["id"])) is None


def test_a_data_set_round_trips_through_the_store_and_its_delete_removes_the_objects(
    artifacts, backend, redis_client
):
    uploaded = _upload(n=50)
    datasets = DatasetStore(redis_client, ArtifactBlobs(artifacts))

    info = datasets.put("acme", uploaded)
    arrays = datasets.arrays(info["id"])

    for name, array in uploaded.arrays.items():
        np.testing.assert_array_equal(arrays[name], array)
    keys = sorted(s.key for s in backend.list())
    assert keys == sorted(f"datasets/{info['id']}/{name}" for name in uploaded.arrays)
    assert redis_client.keys(f"gradq:dataset:{info['id']}:*") == []  # no Redis chunks
    assert datasets.delete(info["id"]) is True
    assert list(backend.list()) == []


def test_a_truncated_data_set_array_is_an_error_naming_it(artifacts, backend, redis_client):
    datasets = DatasetStore(redis_client, ArtifactBlobs(artifacts))
    info = datasets.put("acme", _upload(n=50))
    key = f"datasets/{info['id']}/x_train"
    overwrite(backend, key, bytes(artifacts.read(key))[:-1])

    with pytest.raises(ArtifactCorruptError, match=key):
        datasets.arrays(info["id"])


def test_data_set_arrays_get_records_only_with_the_sets_metadata(artifacts, backend):
    blobs = ArtifactBlobs(artifacts)
    blobs.put("ds_crashed:x_train", memoryview(b"\x01" * 64))  # ...then the API process dies

    assert artifacts.record("datasets/ds_crashed/x_train") is None
    assert [s.key for s in backend.list()] == ["datasets/ds_crashed/x_train"]
    done = collect(artifacts, grace_seconds=60, now=time.time() + 61)
    assert done.unreferenced == ["datasets/ds_crashed/x_train"] and list(backend.list()) == []

"""ModelStore: trained models saved, listed per tenant, loaded without pickle, deleted."""

from __future__ import annotations

import io

import numpy as np
import pytest

import nnlib
from worker.models_store import ModelStore

pytestmark = pytest.mark.integration

SPEC = {
    "layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 3}]
}


def test_a_saved_model_loads_back_with_its_metadata(redis_client):
    store = ModelStore(redis_client)
    model = nnlib.build_model(SPEC, (5,), seed=1)

    saved = store.save(
        model,
        tenant="acme",
        job_id="job_1",
        name="m",
        classes=["a", "b", "c"],
        num_classes=3,
        preprocessing={"scale": 1.0},
        metrics={"test_accuracy": 0.5},
    )
    loaded, meta = store.load_model(saved["id"])

    assert saved["id"].startswith("mdl_") and meta == store.get(saved["id"]) == saved
    assert meta["input_shape"] == [5] and meta["num_parameters"] == model.num_parameters()
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with np.load(io.BytesIO(store.weights(saved["id"])), allow_pickle=False) as npz:
        assert npz.files  # a plain .npz, readable without pickle
    assert meta["size_bytes"] == len(store.weights(saved["id"]))


def test_models_are_listed_per_tenant_newest_first_and_deleted(redis_client):
    store = ModelStore(redis_client)
    model = nnlib.build_model(SPEC, (5,), seed=1)
    first = store.save(model, tenant="acme", job_id="job_1")["id"]
    second = store.save(model, tenant="acme", job_id="job_2")["id"]
    store.save(model, tenant="other", job_id="job_3")

    assert [m["id"] for m in store.list("acme")] == [second, first]
    assert store.delete(first) is True and store.delete(first) is False
    assert store.get(first) is None and store.weights(first) is None
    assert [m["id"] for m in store.list("acme")] == [second]
    with pytest.raises(KeyError):
        store.load_model(first)

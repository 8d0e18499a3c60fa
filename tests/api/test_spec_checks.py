"""Job specs that are valid JSON but cannot work: refused at submit (422 naming the field)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from tests.api.specs import with_layers
from tests.api.test_datasets import upload
from tests.harness import npz_bytes

FLAT = {"type": "flatten"}


def detail(response) -> tuple[list, str]:
    error = response.json()["detail"][0]
    return error["loc"], error["msg"]


def test_fewer_samples_than_shards_is_refused_naming_batch_size(alice):
    response = alice.post("/v1/jobs", json=with_layers(FLAT, {"type": "dense", "units": 10},
                                                        batch_size=1, shards=2))  # fmt: skip
    assert response.status_code == 422
    loc, msg = detail(response)
    assert loc == ["body", "batch_size"]
    assert msg.startswith("batch_size (1) must be >= shards (2)")


@pytest.mark.parametrize("units", [10, 1])
def test_mse_on_class_labels_is_refused_naming_loss(alice, units):
    spec = with_layers(FLAT, {"type": "dense", "units": units}, loss="mse")
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    loc, msg = detail(response)
    assert loc == ["body", "loss"]
    assert "mse" in msg and "10 classes" in msg


def test_binary_cross_entropy_on_ten_classes_is_refused_naming_loss(alice):
    spec = with_layers(FLAT, {"type": "dense", "units": 1}, loss="binary_cross_entropy")
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    loc, msg = detail(response)
    assert loc == ["body", "loss"] and "2 classes" in msg and "has 10" in msg


def test_binary_cross_entropy_on_two_classes_needs_one_logit(alice):
    spirals = {"name": "spirals", "classes": 2}
    one = with_layers({"type": "dense", "units": 1}, loss="binary_cross_entropy", dataset=spirals)
    two = with_layers({"type": "dense", "units": 2}, loss="binary_cross_entropy", dataset=spirals)
    assert alice.post("/v1/jobs", json=one).status_code == 202
    response = alice.post("/v1/jobs", json=two)
    assert response.status_code == 422
    assert detail(response)[0] == ["body", "loss"] and "[2]" in detail(response)[1]


def test_cross_entropy_output_width_must_equal_the_number_of_classes(alice):
    blobs = {"name": "blobs", "classes": 4}
    spec = with_layers({"type": "dense", "units": 3}, dataset=blobs)
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    loc, msg = detail(response)
    assert loc == ["body", "loss"] and "[4]" in msg and "[3]" in msg


def _regression_set(client, y: np.ndarray) -> str:
    x = np.random.default_rng(0).random((len(y), 5)).astype(np.float32)
    response = upload(client, npz_bytes(x_train=x, y_train=y))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_losses_are_checked_against_an_uploaded_sets_recorded_targets(alice):
    y = np.linspace(-3.0, 7.0, 40).astype(np.float32)
    dataset = {"id": _regression_set(alice, y)}
    assert alice.get(f"/v1/datasets/{dataset['id']}").json()["target_range"] == [-3.0, 7.0]

    def submit(loss: str, units: int):
        spec = with_layers({"type": "dense", "units": units}, loss=loss, dataset=dataset)
        return alice.post("/v1/jobs", json=spec)

    assert submit("mse", 1).status_code == 202
    refused = {
        ("mse", 3): "1 value(s)",
        ("cross_entropy", 1): "needs class labels",
        ("binary_cross_entropy", 1): "[-3.0, 7.0]",
    }
    for (loss, units), words in refused.items():
        response = submit(loss, units)
        assert response.status_code == 422, (loss, units)
        loc, msg = detail(response)
        assert loc == ["body", "loss"] and words in msg, (loss, units, msg)


def test_binary_cross_entropy_accepts_regression_targets_in_the_unit_interval(alice):
    dataset = {"id": _regression_set(alice, np.linspace(0.0, 1.0, 40).astype(np.float32))}
    spec = with_layers({"type": "dense", "units": 1}, loss="binary_cross_entropy", dataset=dataset)
    assert alice.post("/v1/jobs", json=spec).status_code == 202


@pytest.mark.parametrize(
    ("batchnorm_at", "layers"),
    [
        (1, [FLAT, {"type": "batchnorm"}, {"type": "dense", "units": 10}]),
        (
            1,
            [
                {"type": "conv2d", "filters": 2, "kernel_size": 3},
                {"type": "batchnorm"},
                {"type": "dense", "units": 10},
            ],
        ),
    ],  # fmt: skip
)
def test_batchnorm_with_one_sample_per_shard_is_refused(alice, batchnorm_at, layers):
    spec = with_layers(*layers, batch_size=2, shards=2)
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    loc, msg = detail(response)
    assert loc == ["body", "batch_size"]
    assert "batch_size 2" in msg and "shards 2" in msg and "1 sample(s)" in msg
    assert f"model.layers[{batchnorm_at}]" in msg and "batch_size >= 4" in msg


def test_batchnorm_with_two_samples_per_shard_and_one_sample_without_it_are_accepted(alice):
    with_bn = with_layers(FLAT, {"type": "batchnorm"}, {"type": "dense", "units": 10})
    assert alice.post("/v1/jobs", json={**with_bn, "batch_size": 5, "shards": 2}).status_code == 202
    plain = with_layers(FLAT, {"type": "dense", "units": 10}, batch_size=2, shards=2)
    assert alice.post("/v1/jobs", json=plain).status_code == 202


def test_batchnorm_on_a_training_set_smaller_than_two_samples_per_shard_is_refused(alice):
    # 3 rows over 2 shards: the one batch of 3 gave shard 1 a single sample every step, and the
    # job "succeeded" (the batch_size check alone passed: 4 // 2 = 2)
    three = b"a,b,label\n1,2,0\n3,4,1\n5,6,0\n"
    created = alice.post("/v1/datasets", files={"file": ("three.csv", three, "text/csv")})
    dataset = {"id": created.json()["id"], "validation_split": 0.0}
    layers = ({"type": "dense", "units": 4}, {"type": "batchnorm"}, {"type": "dense", "units": 2})

    def submit(shards: int, **split):
        spec = with_layers(*layers, batch_size=4, shards=shards, dataset=dataset | split)
        return alice.post("/v1/jobs", json=spec)

    response = submit(2)
    assert response.status_code == 422
    loc, msg = detail(response)
    assert loc == ["body", "shards"]
    assert "3 samples leave 3 for training" in msg and "1 per shard over shards 2" in msg
    assert "model.layers[1]" in msg and "use shards <= 1" in msg
    assert submit(1).status_code == 202
    # half held out for validation leaves 2 (round(1.5) = 2 held): too few even for one shard
    response = submit(1, validation_split=0.5)
    assert response.status_code == 422 and "leave 1 for training" in detail(response)[1]


def test_a_billion_parameter_model_is_refused_from_its_shapes_without_allocating(alice):
    layers = [FLAT] + [{"type": "dense", "units": 8192, "activation": "relu"}] * 16
    spec = with_layers(*layers)
    tracemalloc.start()
    try:
        response = alice.post("/v1/jobs", json=spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 422
    loc, msg = detail(response)
    expected = 64 * 8192 + 8192 + 15 * (8192 * 8192 + 8192)  # 1,007,288,320
    assert loc == ["body", "model"]
    assert str(expected) in msg and "100000" in msg and "GRADQ_MAX_PARAMETERS" in msg
    assert peak < 50 * 1024 * 1024  # building it would take 4 GB of float32 weights


def test_early_stopping_on_val_accuracy_needs_a_loss_with_an_accuracy(alice):
    dataset = {"id": _regression_set(alice, np.linspace(-1.0, 1.0, 40).astype(np.float32))}
    stopping = {"monitor": "val_accuracy"}
    mse = with_layers({"type": "dense", "units": 1}, loss="mse", dataset=dataset)

    refused = alice.post("/v1/jobs", json={**mse, "early_stopping": stopping})
    on_loss = alice.post("/v1/jobs", json={**mse, "early_stopping": {"monitor": "val_loss"}})
    classifier = alice.post("/v1/jobs", json=with_layers(FLAT, {"type": "dense", "units": 10},
                                                         early_stopping=stopping))  # fmt: skip

    assert refused.status_code == 422
    loc, msg = detail(refused)
    assert (
        loc == ["body", "early_stopping"] and "'val_accuracy' needs a loss with an accuracy" in msg
    )
    assert on_loss.status_code == 202 and classifier.status_code == 202

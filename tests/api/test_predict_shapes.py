"""Prediction inputs match the model's input shape with or without the batch axis, without its
size-1 channel axis, or flattened (issue 11; docs/datasets.md); anything else names the shape."""

from __future__ import annotations

import numpy as np
import pytest

from api.predict import sample_shapes
from tests.api.models_fixture import raw_digits, store_digits_model


@pytest.fixture
def image_model_url(redis_client) -> str:
    """A digits model on (1, 8, 8) images: the 8x8 analogue of an MNIST (1, 28, 28) model."""
    return f"/v1/models/{store_digits_model(redis_client, 'alice', as_image=True)['id']}/predict"


def test_mnist_shaped_models_take_28x28_samples_with_or_without_the_channel_axis():
    assert sample_shapes((1, 28, 28)) == [(1, 28, 28), (28, 28), (784,)]
    assert sample_shapes((64,)) == [(64,)]
    assert sample_shapes((3, 32, 32)) == [(3, 32, 32), (3072,)]


@pytest.mark.parametrize(
    "shape",
    [(3, 1, 8, 8), (3, 8, 8), (3, 64)],
    ids=["(n, 1, 8, 8)", "(n, 8, 8)", "(n, 64)"],
)
def test_every_documented_batch_shape_gives_the_same_predictions(alice, image_model_url, shape):
    raw, _ = raw_digits(3, as_image=True)
    reference = alice.post(image_model_url, json={"inputs": raw.tolist()}).json()
    response = alice.post(image_model_url, json={"inputs": raw.reshape(shape).tolist()})
    assert response.status_code == 200, response.text
    assert response.json() == reference


@pytest.mark.parametrize("shape", [(1, 8, 8), (8, 8), (64,)])
def test_one_sample_without_the_batch_axis_is_one_prediction(alice, image_model_url, shape):
    raw, _ = raw_digits(1, as_image=True)
    response = alice.post(image_model_url, json={"inputs": raw[0].reshape(shape).tolist()})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1


@pytest.mark.parametrize("shape", [(8,), (2, 8), (2, 4, 16), (2, 1, 4, 16), (1, 1, 1, 8, 8)])
def test_other_shapes_are_422_naming_the_expected_shape(alice, image_model_url, shape):
    inputs = np.zeros(shape).tolist()
    response = alice.post(image_model_url, json={"inputs": inputs})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert f"got shape {list(shape)}" in detail and "[1, 8, 8]" in detail and "[8, 8]" in detail

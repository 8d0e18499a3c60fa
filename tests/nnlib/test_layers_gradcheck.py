"""Every layer type's backward (input gradient and every parameter gradient) equals float64
central differences to a relative error below 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib.gradcheck import layer_gradient_errors
from nnlib.layers import layer_from_spec

TOL = 1e-6


def _built(spec: dict, input_shape: tuple[int, ...], seed: int = 0):
    layers = layer_from_spec(spec, 0)
    rng = np.random.default_rng(seed)
    shape = input_shape
    for layer in layers:
        shape = layer.build(shape, rng, np.float64)
        # non-zero biases/betas so their gradients are exercised away from a special point
        for p in layer.params.values():
            p += rng.standard_normal(p.shape) * 0.1
    return layers


def _check(layer, x, training=True):
    errors = layer_gradient_errors(layer, x, np.random.default_rng(7), training=training)
    assert set(errors) == {"x", *layer.params}
    assert max(errors.values()) < TOL, errors
    return errors


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense(use_bias):
    (dense,) = _built({"type": "dense", "units": 5, "use_bias": use_bias}, (6,))
    _check(dense, np.random.default_rng(1).standard_normal((4, 6)))


def test_dense_on_image_input_flattens_in_c_order():
    (dense,) = _built({"type": "dense", "units": 3}, (2, 3, 3))
    x = np.random.default_rng(1).standard_normal((4, 2, 3, 3))

    _check(dense, x)
    np.testing.assert_allclose(
        dense.forward(x, True), x.reshape(4, -1) @ dense.params["W"] + dense.params["b"]
    )


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax"])
@pytest.mark.parametrize("shape", [(6,), (2, 3, 3)])
def test_activation_layers(name, shape):
    (layer,) = _built({"type": name}, shape)
    x = np.random.default_rng(2).standard_normal((3, *shape))
    _check(layer, np.where(np.abs(x) < 1e-3, 0.3, x))

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


@pytest.mark.parametrize(
    "kernel_size, stride, padding, in_c, out_c, hw",
    [
        (3, 1, "valid", 1, 2, (6, 6)),
        (3, 1, "same", 2, 3, (5, 6)),
        (3, 2, "same", 3, 2, (7, 6)),
        ([2, 3], [2, 1], "valid", 2, 4, (7, 6)),
        ([3, 2], 1, 1, 3, 2, (5, 4)),
        (4, 1, "same", 1, 2, (5, 5)),  # even kernel: asymmetric "same" padding
        (3, 3, 2, 2, 3, (8, 7)),
        (5, 2, "valid", 2, 2, (8, 9)),  # stride leaves the last rows uncovered
        # in_channels * kw >= 16 takes the pixel-rows im2col layout
        # (stride 1 there computes dx as one GEMM over the zero-padded dout)
        (3, 1, "same", 8, 3, (5, 5)),
        ([5, 4], 2, 1, 4, 2, (7, 8)),
        (3, 1, "valid", 8, 2, (6, 5)),
        ([2, 4], 1, "same", 8, 3, (5, 6)),  # even kernel: padding after > before
        (3, 1, 4, 6, 2, (4, 5)),  # padding beyond the kernel's reach: border outputs see no x
        ([5, 3], [1, 2], 1, 8, 2, (7, 6)),  # stride 1 on one axis only: the col2im path
    ],
)
def test_conv2d(kernel_size, stride, padding, in_c, out_c, hw):
    spec = {"type": "conv2d", "filters": out_c, "kernel_size": kernel_size}
    spec.update(stride=stride, padding=padding)
    (conv,) = _built(spec, (in_c, *hw))
    _check(conv, np.random.default_rng(3).standard_normal((2, in_c, *hw)))


def _distinct(shape, seed=4):
    """Values with pairwise gaps >= 0.01 so no window has a near-tie within the FD step."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.01 - 1.0


@pytest.mark.parametrize("kind", ["maxpool2d", "avgpool2d"])
@pytest.mark.parametrize(
    "pool_size, stride, hw",
    [(2, None, (6, 6)), (2, None, (5, 7)), ([2, 3], None, (6, 6)), (3, 2, (7, 7)), (2, 1, (5, 4))],
)
def test_pooling(kind, pool_size, stride, hw):
    (pool,) = _built({"type": kind, "pool_size": pool_size, "stride": stride}, (3, *hw))
    _check(pool, _distinct((2, 3, *hw)))


@pytest.mark.parametrize("shape", [(5,), (3, 4, 4)])
def test_batchnorm_in_training_mode(shape):
    (bn,) = _built({"type": "batchnorm"}, shape)
    _check(bn, np.random.default_rng(5).standard_normal((6, *shape)) * 3 + 1, training=True)


@pytest.mark.parametrize("shape", [(5,), (3, 4, 4)])
def test_batchnorm_in_eval_mode(shape):
    (bn,) = _built({"type": "batchnorm"}, shape)
    bn.buffers["running_mean"][:] = 0.3
    bn.buffers["running_var"][:] = 2.0
    _check(bn, np.random.default_rng(5).standard_normal((6, *shape)), training=False)


@pytest.mark.parametrize("shape", [(20,), (2, 5, 5)])
def test_dropout_with_its_mask_fixed(shape):
    (drop,) = _built({"type": "dropout", "rate": 0.4}, shape)
    x = np.random.default_rng(6).standard_normal((4, *shape))
    drop.forward(x, training=True)
    drop.fix_mask(drop.mask)

    errors = _check(drop, x)

    assert 0 < np.count_nonzero(drop.mask) < drop.mask.size
    assert errors["x"] < TOL


def test_flatten():
    (flat,) = _built({"type": "flatten"}, (2, 3, 4))
    _check(flat, np.random.default_rng(1).standard_normal((3, 2, 3, 4)))


def test_flatten_on_a_channels_last_input_returns_the_gradient_in_that_memory_order():
    (flat,) = _built({"type": "flatten"}, (2, 3, 4))
    x = np.random.default_rng(1).standard_normal((3, 3, 4, 2)).transpose(0, 3, 1, 2)
    flat.forward(x, training=True)
    dout = np.arange(3 * 24, dtype=np.float64).reshape(3, 24)
    dx = flat.backward(dout)
    assert dx.transpose(0, 2, 3, 1).flags.c_contiguous  # the conv output's layout
    np.testing.assert_array_equal(dx, dout.reshape(3, 2, 3, 4))

"""Pooling: max-pool routes each window's gradient to exactly one maximum, even on ties.

On the blank background of real images every value in a window ties; sending the gradient to each
tied position multiplies it. Finite differences cannot see that (the max is not differentiable at
a tie), so these tests check the routing itself and a conv bias gradient against a reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import build_model
from nnlib.layers import layer_from_spec


def _pool(kind, input_shape, **spec):
    (layer,) = layer_from_spec({"type": kind, **spec}, 0)
    layer.build(input_shape, np.random.default_rng(0), np.float64)
    return layer


def _blank_image_with_a_stroke(n=2, c=2, h=8, w=8):
    x = np.zeros((n, c, h, w))
    x[:, :, 3:5, 2:6] = np.random.default_rng(0).uniform(0.5, 1.0, (n, c, 2, 4))
    return x


def test_constant_window_sends_its_gradient_to_exactly_one_position_the_first():
    pool = _pool("maxpool2d", (1, 4, 4), pool_size=2)
    pool.forward(np.full((1, 1, 4, 4), 3.0), training=True)

    dx = pool.backward(np.ones((1, 1, 2, 2)))

    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1.0  # the top-left (first) element of every window
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize("pool_size, stride", [(2, None), (3, None), (2, 1), (3, 2)])
def test_max_pool_gradient_sum_is_preserved_per_window_on_a_blank_image(pool_size, stride):
    x = _blank_image_with_a_stroke()
    pool = _pool("maxpool2d", x.shape[1:], pool_size=pool_size, stride=stride)
    y = pool.forward(x, training=True)
    dout = np.random.default_rng(1).uniform(1.0, 2.0, y.shape)

    dx = pool.backward(dout)

    # each window contributes its gradient once: the totals per sample/channel match
    np.testing.assert_allclose(dx.sum(axis=(2, 3)), dout.sum(axis=(2, 3)))
    if stride is None:  # non-overlapping: exactly one non-zero per window
        p = pool_size
        n, c, ho, wo = y.shape
        blocks = dx[:, :, : ho * p, : wo * p].reshape(n, c, ho, p, wo, p)
        assert np.all(np.count_nonzero(blocks, axis=(3, 5)) == 1)


def _reference_conv_pool_grads(x, w, b, dout, p):
    """Loop reference for conv(valid, stride 1) -> maxpool(p): first-max routing per window."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    ho, wo = h - k + 1, wd - k + 1
    conv = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, :, i : i + k, j : j + k]
            conv[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    dw, db = np.zeros_like(w), np.zeros_like(b)
    for s in range(n):
        for f in range(o):
            for pi in range(ho // p):
                for pj in range(wo // p):
                    window = conv[s, f, pi * p : pi * p + p, pj * p : pj * p + p]
                    i, j = np.unravel_index(np.argmax(window), window.shape)  # first max
                    i, j = pi * p + i, pj * p + j
                    g = dout[s, f, pi, pj]
                    db[f] += g
                    dw[f] += g * x[s, :, i : i + k, j : j + k]
    return dw, db


def test_conv_then_maxpool_on_a_zero_background_gives_the_reference_bias_gradient():
    spec = {
        "layers": [
            {"type": "conv2d", "filters": 3, "kernel_size": 3},
            {"type": "maxpool2d", "pool_size": 2},
        ]
    }
    x = _blank_image_with_a_stroke(n=2, c=1, h=10, w=10)
    model = build_model(spec, (1, 10, 10), seed=0, dtype=np.float64)
    y = model.forward(x, training=True)
    dout = np.random.default_rng(2).uniform(0.5, 1.5, y.shape)

    model.backward(dout)

    w, b = model.parameters()["0.W"], model.parameters()["0.b"]
    dw_ref, db_ref = _reference_conv_pool_grads(x, w, b, dout, 2)
    grads = model.gradients()
    # every pooled output depends on exactly one conv output, whose d/db is 1
    np.testing.assert_allclose(grads["0.b"], dout.sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(grads["0.b"], db_ref, rtol=1e-12)
    np.testing.assert_allclose(grads["0.W"], dw_ref, rtol=1e-10, atol=1e-12)


def test_max_pool_forward_takes_the_window_maximum():
    x = np.arange(2 * 16, dtype=np.float64).reshape(1, 2, 4, 4)[:, :, ::-1]
    pool = _pool("maxpool2d", (2, 4, 4), pool_size=2)

    y = pool.forward(np.ascontiguousarray(x), training=False)

    expected = x.reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(y, expected)


def test_avg_pool_forward_and_backward_spread_evenly():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    pool = _pool("avgpool2d", (1, 4, 4), pool_size=2)

    y = pool.forward(x, training=True)
    dx = pool.backward(np.ones_like(y))

    np.testing.assert_allclose(y[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_allclose(dx, 0.25)


def test_pool_output_shapes_with_stride():
    assert _pool("maxpool2d", (3, 7, 9), pool_size=3, stride=2).output_shape == (3, 3, 4)
    assert _pool("avgpool2d", (1, 5, 5), pool_size=[2, 1]).output_shape == (1, 2, 5)

"""Activation functions: exact gradients (float64 finite differences), stability, dtype kept."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib.activations import ACTIVATIONS, gelu, sigmoid, softmax
from nnlib.gradcheck import numerical_gradient, relative_error

NAMES = sorted(ACTIVATIONS)


def _inputs(shape=(4, 7), seed=0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape) * 2.0
    # keep ReLU-family kinks away from the finite-difference step
    return np.where(np.abs(x) < 1e-3, 0.5, x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 4, 5)])
def test_backward_matches_central_differences(name, shape):
    fn = ACTIVATIONS[name]
    x = _inputs(shape)
    r = np.random.default_rng(1).standard_normal(shape)

    analytic = fn.backward(r, x, fn.forward(x))
    numeric = numerical_gradient(lambda: float((fn.forward(x) * r).sum()), x)

    assert relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_float32_in_float32_out(name):
    fn = ACTIVATIONS[name]
    x = _inputs().astype(np.float32)
    y = fn.forward(x)

    assert y.dtype == np.float32
    assert fn.backward(np.ones_like(y), x, y).dtype == np.float32


def test_sigmoid_and_softmax_do_not_overflow_for_huge_inputs():
    x = np.array([[-1000.0, 0.0, 1000.0]])

    with np.errstate(over="raise", invalid="raise"):
        s = sigmoid(x)
        p = softmax(x)

    np.testing.assert_allclose(s, [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(p, [[0.0, 0.0, 1.0]])


def test_softmax_rows_sum_to_one_over_the_feature_axis():
    x = _inputs((3, 5, 2, 2))

    np.testing.assert_allclose(softmax(x).sum(axis=1), 1.0)


def test_gelu_is_the_tanh_approximation():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    np.testing.assert_allclose(gelu(x), expected, rtol=1e-12)

"""Activation functions as pure forward/backward pairs.

Every ``forward(x) -> y`` works elementwise on an array of any shape (softmax: over axis 1, the
feature/channel axis) and keeps ``x.dtype``: constants are Python floats, which NumPy treats as
"weak" scalars, so float32 inputs never get upcast to float64. Every
``backward(dout, x, y) -> dx`` receives the cached input and output and returns ``dL/dx``.

GELU uses the tanh approximation (PyTorch's ``approximate="tanh"``); its backward is the exact
derivative of that approximation, so float64 finite differences check it to round-off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

LEAKY_RELU_DEFAULT_ALPHA = 0.01
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def relu_backward(dout: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # y > 0 exactly where x > 0; the kink at 0 gets gradient 0, as in PyTorch.
    return np.multiply(dout, y > 0)


def leaky_relu(x: np.ndarray, alpha: float = LEAKY_RELU_DEFAULT_ALPHA) -> np.ndarray:
    return np.where(x > 0, x, x * alpha)


def leaky_relu_backward(
    dout: np.ndarray, x: np.ndarray, y: np.ndarray, alpha: float = LEAKY_RELU_DEFAULT_ALPHA
) -> np.ndarray:
    return np.where(x > 0, dout, dout * alpha)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only: no overflow for large |x|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(dout: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return dout * y * (1.0 - y)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def tanh_backward(dout: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return dout * (1.0 - y * y)


def gelu(x: np.ndarray) -> np.ndarray:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh approximation."""
    return 0.5 * x * (1.0 + np.tanh(_GELU_C * (x + _GELU_K * x * x * x)))


def gelu_backward(dout: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    t = np.tanh(_GELU_C * (x + _GELU_K * x * x * x))
    du = _GELU_C * (1.0 + 3.0 * _GELU_K * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over axis 1 (features of (N, F), channels of (N, C, H, W)); max-shifted."""
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(dout: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return y * (dout - (dout * y).sum(axis=1, keepdims=True))


class Activation(NamedTuple):
    forward: Callable[..., np.ndarray]
    backward: Callable[..., np.ndarray]


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(relu, relu_backward),
    "leaky_relu": Activation(leaky_relu, leaky_relu_backward),
    "sigmoid": Activation(sigmoid, sigmoid_backward),
    "tanh": Activation(tanh, tanh_backward),
    "gelu": Activation(gelu, gelu_backward),
    "softmax": Activation(softmax, softmax_backward),
}

# Layers followed by these get He initialisation; all others get Xavier/Glorot.
RELU_FAMILY = frozenset({"relu", "leaky_relu", "gelu"})

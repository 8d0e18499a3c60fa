"""An activation function as a layer (a spec layer of its own, or a dense/conv ``activation``)."""

from __future__ import annotations

import numpy as np

from nnlib.activations import ACTIVATIONS, LEAKY_RELU_DEFAULT_ALPHA
from nnlib.layers.base import Layer, check_float


class ActivationLayer(Layer):
    """Elementwise (softmax: over axis 1) activation; no parameters."""

    def __init__(self, name: str, alpha: float | None = None) -> None:
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"field 'type' must be one of {sorted(ACTIVATIONS)}, got {name!r}")
        self.name = name
        self.alpha = None
        if name == "leaky_relu":
            a = LEAKY_RELU_DEFAULT_ALPHA if alpha is None else alpha
            self.alpha = check_float("alpha", a, 0.0, 1.0)
        self._fn = ACTIVATIONS[name]
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def output_shape_for(self, input_shape):
        if self.name == "softmax" and len(input_shape) not in (1, 3):
            raise ValueError(
                f"field 'type' = 'softmax' needs a (features,) or (C, H, W) input, "
                f"got input shape {list(input_shape)}"
            )
        return tuple(input_shape)

    def _extra(self) -> tuple:
        return (self.alpha,) if self.alpha is not None else ()

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        y = self._fn.forward(x, *self._extra())
        self._x, self._y = x, y
        return y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        return self._fn.backward(dout, self._x, self._y, *self._extra())

    def config(self):
        cfg = {"type": self.name}
        if self.alpha is not None:
            cfg["alpha"] = self.alpha
        return cfg

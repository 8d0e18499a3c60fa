"""Flatten (N, C, H, W) -> (N, C*H*W) in C order (PyTorch's order)."""

from __future__ import annotations

import math

import numpy as np

from nnlib.layers.base import Layer


class Flatten(Layer):
    type_name = "flatten"

    def output_shape_for(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        return dout.reshape((dout.shape[0], *self.input_shape))

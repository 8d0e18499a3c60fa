"""Flatten (N, C, H, W) -> (N, C*H*W) in C order (PyTorch's order).

A conv's output is channels-last in memory (see conv.py), so the forward reshape copies. The
backward hands the gradient back in the memory order of that input: the ReLU and max-pool
below then run on operands of one layout (a mixed-layout multiply was 3x slower, and the pool
made a layout copy of it anyway).
"""

from __future__ import annotations

import math

import numpy as np

from nnlib.layers.base import Layer


class Flatten(Layer):
    type_name = "flatten"

    def __init__(self) -> None:
        super().__init__()
        self._like: np.ndarray | None = None

    def output_shape_for(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        self._like = x
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dout (N, C*H*W) -> (N, C, H, W), in the memory order of the forward input."""
        if not input_grad:
            return None
        dx = dout.reshape((dout.shape[0], *self.input_shape))
        like = self._like
        if like is None or like.shape != dx.shape or like.flags.c_contiguous:
            return dx
        out = np.empty_like(like, dtype=dx.dtype)
        np.copyto(out, dx)
        return out

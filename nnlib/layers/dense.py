"""Fully connected layer: y = x W + b with W (in, out), b (out,).

Inputs of higher rank, e.g. (N, C, H, W) after a conv, are flattened to (N, C*H*W) in C order
(the same order as PyTorch's ``flatten``), so a ``flatten`` layer before ``dense`` is optional.

A model's first layer, when large, has ``input_blocks`` (``input_row_blocks``): its forward adds
x[:, a:b] W[a:b] block by block in that order. A data-parallel trainer can then compute the next
step's product block by block as each block of W receives its update, while the rest of the
gradient is still on the network (``BlockedProduct``), with the bits of a plain forward.
"""

from __future__ import annotations

import math

import numpy as np

from nnlib import gemm
from nnlib.initializers import init_weights
from nnlib.layers.base import Layer, check_activation, check_bool, check_int


class Dense(Layer):
    type_name = "dense"
    fields = ("units", "activation", "use_bias")
    required = ("units",)

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True) -> None:
        super().__init__()
        self.units = check_int("units", units, 1)
        self.activation = check_activation("activation", activation)
        self.use_bias = check_bool("use_bias", use_bias)
        # The activation that follows (own field or the next spec layer) picks He vs Xavier.
        self.init_activation = self.activation
        self.init_negative_slope = 0.0
        self._x: np.ndarray | None = None
        self.input_blocks: list[tuple[int, int]] | None = None  # set for a large first layer

    def output_shape_for(self, input_shape):
        return (self.units,)

    def parameter_shapes(self, input_shape):
        shapes = {"W": (math.prod(input_shape), self.units)}
        if self.use_bias:
            shapes["b"] = (self.units,)
        return shapes

    def build(self, input_shape, rng, dtype):
        self.input_shape = tuple(input_shape)
        shapes = self.parameter_shapes(self.input_shape)
        fan_in = shapes["W"][0]
        self.params["W"] = init_weights(
            rng, shapes["W"], fan_in, self.units, dtype, self.init_activation,
            self.init_negative_slope,
        )  # fmt: skip
        if self.use_bias:
            self.params["b"] = np.zeros(shapes["b"], dtype=dtype)
        self.zero_grads()
        self.output_shape = self.output_shape_for(self.input_shape)
        return self.output_shape

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """(N, *input_shape) -> (N, units)."""
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1)
        self._x = x
        if self.input_blocks is None:
            y = gemm.dot(x, self.params["W"])
            if self.use_bias:
                y += self.params["b"]
            return y
        product = BlockedProduct(self, x)
        while product.advance():
            pass
        return product.result()

    def adopt(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Take ``y``, a ``BlockedProduct`` result for ``x`` with the current weights, as this
        forward's output: cache ``x`` for backward as ``forward`` would, return ``y``."""
        self._x = x if x.ndim == 2 else x.reshape(x.shape[0], -1)
        return y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dout (N, units) -> dx (N, *input_shape); dW = x^T dout, db = sum_n dout."""
        x = self._x
        self.grads["W"] = gemm.dot(x.T, dout)  # rows = input features: no reduction to split
        if self.use_bias:
            self.grads["b"] = dout.sum(axis=0)
        if not input_grad:
            return None
        dx = gemm.dot(dout, self.params["W"].T)
        return dx.reshape((dout.shape[0], *self.input_shape))

    def backward_row_blocks(self, dout: np.ndarray, row_ranges: list[tuple[int, int]]):
        """``backward(dout, input_grad=False)`` with dW computed one block of rows at a time, in
        the order of ``row_ranges`` ((start, stop) rows of W covering them all); yields each
        range once its rows of ``grads["W"]`` are final (``grads["b"]`` is, before the first).

        A row block of x^T dout is a product of its own (no sum is split), so the gradient has
        the bits of ``backward``'s (tested), and a caller can ship the first rows while the
        last are computed (``worker.collective.overlap``).
        """
        x = self._x
        if self.use_bias:
            self.grads["b"] = dout.sum(axis=0)
        grad = np.empty_like(self.params["W"])
        self.grads["W"] = grad
        for start, stop in row_ranges:
            grad[start:stop] = gemm.dot(x[:, start:stop].T, dout)
            yield start, stop

    def config(self):
        return {
            "type": "dense",
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }


class BlockedProduct:
    """x W + b of a Dense layer with ``input_blocks``, one block of W's rows per ``advance``.

    ``forward`` runs it at once; a trainer may advance it as each block of W becomes final. Both
    add the same products in the same order, so the result has the same bits.
    """

    def __init__(self, layer: Dense, x: np.ndarray):
        self.layer, self.blocks = layer, layer.input_blocks or [(0, layer.params["W"].shape[0])]
        self.x = x if x.ndim == 2 else x.reshape(x.shape[0], -1)
        self.done = 0  # blocks added so far
        self.y: np.ndarray | None = None

    def advance(self) -> bool:
        """Add the next block's product (it reads that block of W now); -> False when none left."""
        if self.done == len(self.blocks):
            return False
        a, b = self.blocks[self.done]
        part = gemm.dot(self.x[:, a:b], self.layer.params["W"][a:b])
        if self.y is None:
            self.y = part
        else:
            self.y += part
        self.done += 1
        return True

    def result(self) -> np.ndarray:
        """(N, units): the sum of every block's product, plus the bias (read now)."""
        if self.done != len(self.blocks):
            raise RuntimeError(f"{len(self.blocks) - self.done} blocks of the product are missing")
        if self.layer.use_bias:
            self.y += self.layer.params["b"]
        return self.y


INPUT_BLOCK_BYTES = 256 * 1024  # a first dense layer's W above this is used in row blocks
MAX_INPUT_BLOCKS = 8  # each block adds one (N, units) pass to the forward
# Blocks start on multiples of this many rows where they are at least twice that tall. A GEMM kernel
# computes rows of x^T dout in panels of its M unroll and the rows past the last full panel
# in a tail kernel whose sum over the samples may round differently: OpenBLAS 0.3.31's Haswell
# SGEMM gives a block starting at row 196 of the MLP's 784 other bits than the whole product,
# so the overlap could not ship the first layer in blocks (``blocks_keep_bits``); starting at
# 192 it gives the same bits. Measured there: starts on multiples of 24 rows keep the bits, of
# 16 do not; 48 also suits kernels whose panels are 16 rows tall.
INPUT_BLOCK_ALIGN = 48


def input_row_blocks(
    rows: int, units: int, itemsize: int, block_bytes: int = INPUT_BLOCK_BYTES
) -> list[tuple[int, int]] | None:
    """Row blocks of about ``block_bytes`` (at most MAX_INPUT_BLOCKS) of a first Dense layer's
    W (rows, units), last rows first, starting on multiples of INPUT_BLOCK_ALIGN where blocks
    are at least twice that tall; None if it is one block.

    Last rows first because that is the order backward can hand them to the network (the
    bias's gradient travels with the first block): ``worker.collective.overlap``.
    """
    blocks = min(rows, -(-rows * units * itemsize // block_bytes), MAX_INPUT_BLOCKS)
    if blocks <= 1:
        return None
    # blocks at least twice `align` tall keep within half an `align` of their even share
    align = INPUT_BLOCK_ALIGN if rows >= 2 * blocks * INPUT_BLOCK_ALIGN else 1
    inner = [(rows * k // blocks + align // 2) // align * align for k in range(1, blocks)]
    bounds = [0, *inner, rows]
    return [(bounds[k], bounds[k + 1]) for k in range(blocks - 1, -1, -1)]

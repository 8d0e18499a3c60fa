"""2-D convolution (cross-correlation, like PyTorch) through im2col and one GEMM.

Layouts: input (N, C, H, W), W (out_channels, in_channels, kh, kw), b (out_channels,), output
(N, O, Ho, Wo). Internally the work is channels-last: the output is the (N*Ho*Wo, O) GEMM result
seen through a transposed view, so a following ReLU/pool keeps that memory order (NumPy ufuncs
allocate in the input's order) and the next conv's im2col copies rows of kw*C contiguous values.

Forward: cols (N*Ho*Wo, kh*kw*C) from a strided sliding-window view (one copy), y = cols @ Wm.
Backward: dW = cols^T @ dy and dcols = dy @ Wm^T (one GEMM each); col2im adds dcols back with a
loop over the kh*kw kernel offsets only (each iteration a vectorised strided add over all samples
and pixels).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnlib.initializers import init_weights
from nnlib.layers.base import (
    Layer,
    check_activation,
    check_bool,
    check_int,
    check_pair,
    spatial_input,
)


def _padding(padding, size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of one spatial axis."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        # TensorFlow's rule: output = ceil(size / stride); odd totals put the extra after.
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2
    return padding, padding


class Conv2D(Layer):
    type_name = "conv2d"
    fields = ("filters", "kernel_size", "stride", "padding", "activation", "use_bias")
    required = ("filters", "kernel_size")

    def __init__(
        self,
        filters: int,
        kernel_size,
        stride=1,
        padding="valid",
        activation: str | None = None,
        use_bias: bool = True,
    ) -> None:
        super().__init__()
        self.filters = check_int("filters", filters, 1)
        self.kernel_size = check_pair("kernel_size", kernel_size, 1)
        self.stride = check_pair("stride", stride, 1)
        if padding not in ("valid", "same"):
            try:
                padding = check_int("padding", padding, 0)
            except ValueError:
                raise ValueError(
                    f"field 'padding' must be 'valid', 'same' or an integer >= 0, got {padding!r}"
                ) from None
        self.padding = padding
        self.activation = check_activation("activation", activation)
        self.use_bias = check_bool("use_bias", use_bias)
        self.init_activation = self.activation
        self.init_negative_slope = 0.0
        self._cache: tuple | None = None

    def build(self, input_shape, rng, dtype):
        c, h, w = spatial_input("kernel_size", list(self.kernel_size), tuple(input_shape))
        kh, kw = self.kernel_size
        sh, sw = self.stride
        self.pad_h = _padding(self.padding, h, kh, sh)
        self.pad_w = _padding(self.padding, w, kw, sw)
        hp, wp = h + sum(self.pad_h), w + sum(self.pad_w)
        if kh > hp or kw > wp:
            raise ValueError(
                f"field 'kernel_size' = {list(self.kernel_size)} is larger than the padded input "
                f"({hp}, {wp}) of input shape {list(input_shape)}"
            )
        ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        fan_in, fan_out = c * kh * kw, self.filters * kh * kw
        self.params["W"] = init_weights(
            rng,
            (self.filters, c, kh, kw),
            fan_in,
            fan_out,
            dtype,
            self.init_activation,
            self.init_negative_slope,
        )
        if self.use_bias:
            self.params["b"] = np.zeros(self.filters, dtype=dtype)
        self.zero_grads()
        self.input_shape = tuple(input_shape)
        self.output_shape = (self.filters, ho, wo)
        return self.output_shape

    def _padded_nhwc(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> zero-padded channels-last (N, Hp, Wp, C) (a view when no padding)."""
        xh = x.transpose(0, 2, 3, 1)
        (pt, pb), (pl, pr) = self.pad_h, self.pad_w
        if pt == pb == pl == pr == 0:
            return xh
        n, h, w, c = xh.shape
        xp = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype=x.dtype)
        xp[:, pt : pt + h, pl : pl + w, :] = xh
        return xp

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """(N, C, H, W) -> (N, O, Ho, Wo)."""
        n = x.shape[0]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        o, ho, wo = self.output_shape
        xp = self._padded_nhwc(x)
        win = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]  # (N,Ho,Wo,C,kh,kw)
        cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, -1)  # the one im2col copy
        w_mat = self.params["W"].transpose(2, 3, 1, 0).reshape(-1, o)  # (kh*kw*C, O)
        out = cols @ w_mat
        if self.use_bias:
            out += self.params["b"]
        if training:
            self._cache = (cols, w_mat, n, xp.shape)
        return out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dout (N, O, Ho, Wo) -> dx (N, C, H, W); assigns grads W (O, C, kh, kw) and b (O,)."""
        if self._cache is None:
            raise RuntimeError("conv2d backward needs a forward(training=True) first")
        cols, w_mat, n, padded_shape = self._cache
        kh, kw = self.kernel_size
        sh, sw = self.stride
        o, ho, wo = self.output_shape
        c = self.input_shape[0]
        d = dout.transpose(0, 2, 3, 1).reshape(n * ho * wo, o)  # free when dout is channels-last
        dw = cols.T @ d
        self.grads["W"] = np.ascontiguousarray(dw.reshape(kh, kw, c, o).transpose(3, 2, 0, 1))
        if self.use_bias:
            self.grads["b"] = d.sum(axis=0)
        if not input_grad:
            return None
        dcols = (d @ w_mat.T).reshape(n, ho, wo, kh, kw, c)
        dxp = np.zeros(padded_shape, dtype=dout.dtype)
        for i in range(kh):
            for j in range(kw):
                dxp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :] += dcols[
                    :, :, :, i, j, :
                ]
        (pt, _), (pl, _) = self.pad_h, self.pad_w
        _, h, w = self.input_shape
        return dxp[:, pt : pt + h, pl : pl + w, :].transpose(0, 3, 1, 2)

    def config(self):
        return {
            "type": "conv2d",
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }


def conv_output_size(size: int, kernel: int, stride: int, padding) -> int:
    """Output length of one spatial axis (for documentation and tests)."""
    before, after = _padding(padding, size, kernel, stride)
    return math.floor((size + before + after - kernel) / stride) + 1

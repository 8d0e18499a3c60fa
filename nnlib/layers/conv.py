"""2-D convolution (cross-correlation, like PyTorch) through im2col and one GEMM, or the FFT.

Stride-1 layers whose shape makes the FFT much cheaper (conv_fourier.pays: wide kernels on many
channels) go through the frequency domain (conv_fourier.py); the rest through im2col, below.

Layouts: input (N, C, H, W), W (out_channels, in_channels, kh, kw), b (out_channels,), output
(N, O, Ho, Wo). Internally the work is channels-last: the output is the (N*Ho*Wo, O) GEMM result
seen through a transposed view, so a following ReLU/pool keeps that memory order (NumPy ufuncs
allocate in the input's order) and the next conv's im2col copies rows of kw*C contiguous values.

Layers whose im2col rows are long enough (kw*C >= 16, i.e. all but a first layer on few
channels) run in cache-sized chunks of samples (conv_chunks.py): im2col -> GEMM per chunk, and in
backward im2col -> weight-gradient GEMM -> input gradient per chunk, summed in chunk order.
The others (few channels) use one transposed im2col of the whole batch: cols (kh*kw*C + 1, M)
with a ones row so the bias rides in the GEMM; backward is one GEMM for [dW; db], one batched
GEMM per kernel offset for dcols and a col2im that loops over kernel offsets only. The copies and
col2im are split over samples on nnlib.parallel's threads.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnlib import gemm
from nnlib.initializers import init_weights
from nnlib.layers.base import (
    Layer,
    check_activation,
    check_bool,
    check_int,
    check_pair,
    spatial_input,
)
from nnlib.layers.conv_chunks import ChunkedConv
from nnlib.layers.conv_fourier import FourierConv, pays
from nnlib.parallel import over_samples

_COL2IM_CHUNK = 8  # samples per col2im chunk: an (8, Hp, Wp, C) slab stays in L2 for its adds


_EVAL_COLS_BYTES = 64 << 20  # inference im2col is done in chunks of samples below this size


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
        self._work: dict[str, np.ndarray] = {}

    def _geometry(self, input_shape) -> tuple[int, int, int, tuple, tuple, int, int]:
        """(C, H, W, pad_h, pad_w, Ho, Wo) for ``input_shape``; ValueError if the kernel is big."""
        c, h, w = spatial_input("kernel_size", list(self.kernel_size), tuple(input_shape))
        kh, kw = self.kernel_size
        sh, sw = self.stride
        pad_h, pad_w = _padding(self.padding, h, kh, sh), _padding(self.padding, w, kw, sw)
        hp, wp = h + sum(pad_h), w + sum(pad_w)
        if kh > hp or kw > wp:
            raise ValueError(
                f"field 'kernel_size' = {list(self.kernel_size)} is larger than the padded input "
                f"({hp}, {wp}) of input shape {list(input_shape)}"
            )
        return c, h, w, pad_h, pad_w, (hp - kh) // sh + 1, (wp - kw) // sw + 1

    def output_shape_for(self, input_shape):
        *_, ho, wo = self._geometry(input_shape)
        return (self.filters, ho, wo)

    def parameter_shapes(self, input_shape):
        c = self._geometry(input_shape)[0]
        shapes = {"W": (self.filters, c, *self.kernel_size)}
        if self.use_bias:
            shapes["b"] = (self.filters,)
        return shapes

    def build(self, input_shape, rng, dtype):
        c, h, w, self.pad_h, self.pad_w, ho, wo = self._geometry(input_shape)
        kh, kw = self.kernel_size
        shapes = self.parameter_shapes(input_shape)
        self.params["W"] = init_weights(
            rng, shapes["W"], c * kh * kw, self.filters * kh * kw, dtype, self.init_activation,
            self.init_negative_slope,
        )  # fmt: skip
        if self.use_bias:
            self.params["b"] = np.zeros(shapes["b"], dtype=dtype)
        self.zero_grads()
        self.input_shape = tuple(input_shape)
        self.output_shape = (self.filters, ho, wo)
        pad = (self.pad_h[0], self.pad_w[0])
        self._chunked = ChunkedConv(self.kernel_size, self.stride, (ho, wo), c, pad, (h, w))
        padded = (h + sum(self.pad_h), w + sum(self.pad_w))
        fourier = pays(self.kernel_size, self.stride, padded, c, self.filters)
        self._fourier = FourierConv(self.kernel_size, pad, (h, w), padded) if fourier else None
        return self.output_shape

    def _padded_nhwc(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> zero-padded channels-last (N, Hp, Wp, C) (a view when no padding).

        The padded array is a buffer kept between calls: its border stays zero, only the interior
        is rewritten (im2col copies out of it, so nothing downstream holds on to it).
        """
        xh = x.transpose(0, 2, 3, 1)
        (pt, pb), (pl, pr) = self.pad_h, self.pad_w
        if pt == pb == pl == pr == 0:
            return xh
        n, h, w, c = xh.shape
        shape = (n, h + pt + pb, w + pl + pr, c)
        xp = self._buffer("padded", shape, x.dtype, zero=True)
        inner = xp[:, pt : pt + h, pl : pl + w, :]
        over_samples(lambda a, b: np.copyto(inner[a:b], xh[a:b]), n, xh.size)
        return xp

    def _buffer(self, name: str, shape: tuple, dtype, zero: bool = False) -> np.ndarray:
        """A reusable work array: allocating fresh 10-100 MB arrays every step costs page faults."""
        buf = self._work.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.zeros(shape, dtype=dtype) if zero else np.empty(shape, dtype=dtype)
            self._work[name] = buf
        return buf

    def _im2col(self, x: np.ndarray, into_buffer: bool) -> tuple[np.ndarray, tuple]:
        """cols (K+1, N*Ho*Wo) with a ones row for the bias (few-channel layers only); and the
        padded input's shape. K = kh*kw*C in (kh, kw, C) order."""
        n = x.shape[0]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        _, ho, wo = self.output_shape
        c = self.input_shape[0]
        m, k = n * ho * wo, kh * kw * c
        kb = k + 1 if self.use_bias else k
        xp = self._padded_nhwc(x)
        win = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]  # (N,Ho,Wo,C,kh,kw)
        # The one im2col copy. Rows per output pixel would copy runs of kw*C contiguous values;
        # with few channels those runs are tiny, and copying per kernel offset (rows of Wo
        # values) into the transposed layout is ~5x faster.
        shape = (kb, m)
        cols = self._buffer("cols", shape, x.dtype) if into_buffer else np.empty(shape, x.dtype)
        src = win.transpose(4, 5, 3, 0, 1, 2)  # (kh, kw, C, N, Ho, Wo)
        dst = cols[:k].reshape(kh, kw, c, n, ho, wo)
        over_samples(lambda a, b: np.copyto(dst[:, :, :, a:b], src[:, :, :, a:b]), n, m * k)
        cols[k:].fill(1)
        return cols, xp.shape

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """(N, C, H, W) -> (N, O, Ho, Wo).

        Training keeps the columns (in a buffer reused by the next training forward) for
        backward; eval keeps only a reference to x, and a backward after it rebuilds them.
        """
        if self._fourier is not None:
            xh = x.transpose(0, 2, 3, 1)
            self._cache = ("fourier", xh)
            out = self._fourier.forward(xh, self.params["W"], self.params.get("b"), training)
            return out.transpose(0, 3, 1, 2)
        if self._pixel_rows:
            xp = self._padded_nhwc(
                x
            )  # a kept buffer: backward reads it, the next forward reuses it
            self._cache = ("padded", xp)
            out = self._chunked.forward(xp, self.params["W"], self.params.get("b"))
            return out.transpose(0, 3, 1, 2)
        n = x.shape[0]
        kh, kw = self.kernel_size
        o, ho, wo = self.output_shape
        k = kh * kw * self.input_shape[0]
        kb = k + 1 if self.use_bias else k  # a ones column folds the bias into the GEMM
        step = max(1, _EVAL_COLS_BYTES // (ho * wo * kb * x.dtype.itemsize))
        if not training and n > step:
            # Inference on a large batch: bound the im2col memory by going a chunk at a time.
            out = np.empty((n, ho, wo, o), dtype=x.dtype)
            for s in range(0, n, step):
                out[s : s + step] = self.forward(x[s : s + step], False).transpose(0, 2, 3, 1)
            self._cache = (None, x)
            return out.transpose(0, 3, 1, 2)
        cols, padded_shape = self._im2col(x, into_buffer=training)
        w_aug = np.empty((kb, o), dtype=x.dtype)  # (kh*kw*C [+1], O)
        w_aug[:k] = self.params["W"].transpose(2, 3, 1, 0).reshape(k, o)
        if self.use_bias:
            w_aug[k] = self.params["b"]
        # np.dot (not matmul) takes a transposed operand straight to BLAS
        out = gemm.dot(cols.T, w_aug)
        self._cache = (cols, padded_shape) if training else (None, x)
        return out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)

    @property
    def _pixel_rows(self) -> bool:
        return self.input_shape[0] * self.kernel_size[1] >= 16

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dout (N, O, Ho, Wo) -> dx (N, C, H, W); assigns grads W (O, C, kh, kw) and b (O,)."""
        if self._cache is None:
            raise RuntimeError("conv2d backward needs a forward first")
        cols, saved = self._cache
        if isinstance(cols, str):  # the chunked or the Fourier path (conv_chunks, conv_fourier)
            d = dout.transpose(0, 2, 3, 1)
            path = self._fourier if cols == "fourier" else self._chunked
            self.grads["W"], db, dx = path.backward(saved, self.params["W"], d, input_grad)
            if self.use_bias:
                self.grads["b"] = db
            return None if dx is None else dx.transpose(0, 3, 1, 2)
        if cols is None:  # the last forward was in eval mode and saved its input
            cols, padded_shape = self._im2col(saved, into_buffer=True)
        else:
            padded_shape = saved
        n = dout.shape[0]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        o, ho, wo = self.output_shape
        c = self.input_shape[0]
        k = kh * kw * c
        d = dout.transpose(0, 2, 3, 1).reshape(n * ho * wo, o)  # free when dout is channels-last
        # (K [+1], O): the ones column of cols turns the last row into the bias gradient
        dw = gemm.dot_sum(cols, d)
        self.grads["W"] = np.ascontiguousarray(dw[:k].reshape(kh, kw, c, o).transpose(3, 2, 0, 1))
        if self.use_bias:
            self.grads["b"] = dw[k].copy()
        if not input_grad:
            return None
        # dcols per kernel offset, (kh*kw, M, C): one batched GEMM, d @ W[:, :, i, j]. In this
        # layout each offset's block is contiguous, so col2im adds runs of Wo*C values (rows of
        # dxp) instead of runs of C: ~2.5x faster than adding slices of a (M, kh*kw*C) dcols.
        w_offsets = self.params["W"].transpose(2, 3, 0, 1).reshape(kh * kw, o, c)
        dcols = self._buffer("dcols", (kh * kw, n * ho * wo, c), dout.dtype)
        np.matmul(d, w_offsets, out=dcols)  # into a kept buffer: a fresh one page-faults
        dcols = dcols.reshape(kh, kw, n, ho, wo, c)
        dxp = np.zeros(padded_shape, dtype=dout.dtype)

        def col2im(start: int, stop: int) -> None:
            # kernel offsets x chunks of samples, so a chunk of dxp stays in cache for its adds
            for s in range(start, stop, _COL2IM_CHUNK):
                e = min(s + _COL2IM_CHUNK, stop)
                dx_chunk, dcols_chunk = dxp[s:e], dcols[:, :, s:e]
                for i in range(kh):
                    rows = dx_chunk[:, i : i + sh * (ho - 1) + 1 : sh]
                    for j in range(kw):
                        rows[:, :, j : j + sw * (wo - 1) + 1 : sw, :] += dcols_chunk[i, j]

        over_samples(col2im, n, dcols.size)
        return self._unpad(dxp)

    def _unpad(self, dxp: np.ndarray) -> np.ndarray:
        """dL/d(padded channels-last input) (N, Hp, Wp, C) -> dL/dx (N, C, H, W), a view."""
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

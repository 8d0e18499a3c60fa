"""Conv2D forward/backward in cache-sized chunks of samples (layers with kw*C >= 16).

A whole-batch im2col of a 32-channel 5x5 convolution on 128 images of 14x14 is an 80 MB matrix:
writing it, reading it back for three GEMMs and adding a same-sized dcols back in col2im all go
to main memory, and two cores share that bandwidth. Here every chunk of ``chunk_samples`` samples
goes through im2col -> GEMM (-> weight gradient -> input gradient) while its few MB stay in
cache, and the chunks are spread over nnlib.parallel's threads, so each core runs whole chunks
(no hand-off between a copy phase and a BLAS phase).

The input gradient of a stride-1 layer is itself a convolution: im2col of the zero-padded dout
times the flipped kernel, one GEMM per block of image rows, written straight into dx. That
replaced a dcols GEMM plus a col2im of kh*kw strided adds (measured on the issue's CNN, conv2
backward at 2 threads 39 -> 34 ms). Strided layers keep dcols + col2im.

Determinism: chunk boundaries depend only on the batch size, each chunk writes its own samples
and its own weight-gradient slot, and the slots are summed in chunk order at the end, so the
results are bit-identical whatever the thread count or timing.

Layouts: xp is the zero-padded channels-last input (N, Hp, Wp, C); columns are (rows, K) with
K = kh*kw*C in (kh, kw, C) order; the output and dout are channels-last (N, Ho, Wo, O).
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnlib.parallel import blas_serial, over_samples

CHUNK_BYTES = 2 << 20  # im2col bytes per chunk: a chunk's columns and dcols stay in L2/L3
DX_BLOCK_BYTES = 640 << 10  # dx columns per GEMM: stay in a 1 MB L2 next to dout and W


def run_in_chunks(fn, n: int, step: int, work: int) -> int:
    """Call fn(chunk index, start, stop) for every chunk of ``step`` samples; -> chunks.

    With BLAS on one thread, nnlib's threads run whole chunks (GEMMs included) and take the next
    chunk from a shared counter rather than a fixed half each, so a thread that loses its core for
    a while (a shared machine) does not hold up the other. ``work`` (elements touched) keeps small
    batches serial. Otherwise chunks run in order here and BLAS threads each GEMM.
    """
    chunks = -(-n // step)
    counter = itertools.count()  # next() on it is atomic under the GIL

    def part(_first: int, _last: int) -> None:
        for i in iter(counter.__next__, None):
            if i >= chunks:
                return
            fn(i, i * step, min(n, (i + 1) * step))

    if blas_serial():
        over_samples(part, chunks, work)
    else:
        part(0, chunks)
    return chunks


class ChunkedConv:
    """The geometry of one conv layer plus per-thread work buffers."""

    def __init__(
        self, kernel: tuple, stride: tuple, out_hw: tuple, channels: int, pad: tuple, in_hw: tuple
    ) -> None:
        self.kh, self.kw = kernel
        self.sh, self.sw = stride
        self.ho, self.wo = out_hw
        self.c = channels
        self.k = self.kh * self.kw * channels
        self.pt, self.pl = pad  # padding before rows / columns
        self.h, self.w = in_hw  # unpadded input size
        self._buffers: dict[tuple, object] = {}

    def chunk_samples(self, itemsize: int) -> int:
        return max(1, CHUNK_BYTES // (self.ho * self.wo * self.k * itemsize))

    def _buffer(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A work array private to the calling thread (threads run different chunks at once)."""
        key = (name, threading.get_ident())
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf

    def _windows(self, xp: np.ndarray) -> np.ndarray:
        """The im2col source, a strided view (N, Ho, Wo, kh, kw, C) of xp (made once per call:
        building it costs ~10 us of GIL-holding Python, slicing it per chunk ~0.1 us)."""
        win = sliding_window_view(xp, (self.kh, self.kw), axis=(1, 2))
        return win[:, :: self.sh, :: self.sw].transpose(0, 1, 2, 4, 5, 3)

    def _cols(self, windows: np.ndarray, s: int, e: int) -> np.ndarray:
        """im2col of samples s:e into this thread's buffer, (rows, K)."""
        rows = (e - s) * self.ho * self.wo
        cols = self._buffer("cols", (rows, self.k), windows.dtype)
        np.copyto(cols.reshape(e - s, *windows.shape[1:]), windows[s:e])
        return cols

    def _run(self, fn, n: int, itemsize: int) -> int:
        """Call fn(chunk index, start, stop) for every chunk; -> the number of chunks."""
        return run_in_chunks(fn, n, self.chunk_samples(itemsize), n * self.ho * self.wo * self.k)

    def forward(self, xp: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """xp (N, Hp, Wp, C), w (O, C, kh, kw) -> y (N, Ho, Wo, O)."""
        n, o = xp.shape[0], w.shape[0]
        wm = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(self.k, o))
        out = np.empty((n * self.ho * self.wo, o), dtype=xp.dtype)
        per = self.ho * self.wo
        windows = self._windows(xp)

        def chunk(_: int, s: int, e: int) -> None:
            y = out[s * per : e * per]
            np.dot(self._cols(windows, s, e), wm, out=y)
            if b is not None:
                y += b

        self._run(chunk, n, xp.dtype.itemsize)
        return out.reshape(n, self.ho, self.wo, o)

    def backward(self, xp: np.ndarray, w: np.ndarray, d: np.ndarray, input_grad: bool):
        """d (N, Ho, Wo, O) -> (dW (O, C, kh, kw), db (O,), dx (N, H, W, C) or None)."""
        n, o = xp.shape[0], w.shape[0]
        per = self.ho * self.wo
        d2 = d.reshape(n * per, o)
        step = self.chunk_samples(xp.dtype.itemsize)
        partial = np.empty((-(-n // step), self.k, o), dtype=xp.dtype)
        partial_b = np.empty((len(partial), o), dtype=xp.dtype)
        dx, input_part = self._input_gradient(d, w, xp.shape) if input_grad else (None, None)
        windows = self._windows(xp)

        def chunk(i: int, s: int, e: int) -> None:
            dy = d2[s * per : e * per]
            np.dot(self._cols(windows, s, e).T, dy, out=partial[i])
            np.sum(dy, axis=0, out=partial_b[i])
            if input_part is not None:
                input_part(s, e)

        self._run(chunk, n, xp.dtype.itemsize)
        dw = partial.sum(axis=0)  # chunk order, whatever thread ran which chunk
        dw = dw.reshape(self.kh, self.kw, self.c, o).transpose(3, 2, 0, 1)
        if dx is not None and dx.shape[1:3] != (self.h, self.w):
            dx = dx[:, self.pt : self.pt + self.h, self.pl : self.pl + self.w]
        return np.ascontiguousarray(dw), partial_b.sum(axis=0), dx

    def _input_gradient(self, d: np.ndarray, w: np.ndarray, padded_shape: tuple):
        """(dx, part): dx to fill and part(s, e) filling samples s:e of it. Stride 1: dx
        (N, H, W, C) by GEMM; otherwise the padded (N, Hp, Wp, C) by col2im."""
        n, o = d.shape[0], w.shape[0]
        if self.sh == self.sw == 1:
            dx = np.empty((n, self.h, self.w, self.c), dtype=d.dtype)
            # the flipped kernel as (kh*kw*O, C): dx correlates the padded dout with it
            w_flip = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))
            w_flip = w_flip.reshape(self.kh * self.kw * o, self.c)

            def by_gemm(s: int, e: int) -> None:
                for i in range(s, e):  # one sample at a time, in blocks of rows
                    self._dx_by_gemm(d[i : i + 1], w_flip, dx[i : i + 1])

            return dx, by_gemm
        dxp = np.empty(padded_shape, dtype=d.dtype)
        w_offsets = w.transpose(2, 3, 0, 1).reshape(self.kh * self.kw, o, self.c)
        d2 = d.reshape(n * self.ho * self.wo, o)
        per = self.ho * self.wo

        def by_col2im(s: int, e: int) -> None:
            self._dx_by_col2im(d2[s * per : e * per], w_offsets, dxp[s:e])

        return dxp, by_col2im

    def _dx_by_gemm(self, dy: np.ndarray, w_flip: np.ndarray, dx: np.ndarray) -> None:
        """Stride 1: dx (n, H, W, C) = im2col(dout zero-padded by k-1) @ w_flip, one GEMM.

        Input row a (padded coordinates pt + a) gets dout rows a + pt - (kh-1) ... a + pt, so a
        buffer of H + kh - 1 rows holds dout row y at y - pt + kh - 1 (rows outside dout stay zero;
        dout rows no input row reaches are left out). No col2im scatter, no dcols temporary.
        """
        n, o = dy.shape[0], dy.shape[3]
        buf, windows, cols = self._dx_buffers(n, o, dy.dtype)
        top, left = self.kh - 1 - self.pt, self.kw - 1 - self.pl
        y0, x0 = max(0, -top), max(0, -left)
        y1, x1 = min(self.ho, buf.shape[1] - top), min(self.wo, buf.shape[2] - left)
        buf[:, top + y0 : top + y1, left + x0 : left + x1] = dy[:, y0:y1, x0:x1]
        rows = max(1, DX_BLOCK_BYTES // (self.w * cols.shape[1] * cols.itemsize))
        for r in range(0, self.h, rows):  # blocks of image rows: the columns stay in L2
            win = windows[:, r : r + rows]
            block = cols[: win.shape[0] * win.shape[1] * self.w]
            np.copyto(block.reshape(win.shape), win)
            np.dot(block, w_flip, out=dx[:, r : r + rows].reshape(-1, self.c))

    def _dx_buffers(self, n: int, o: int, dtype) -> tuple:
        """This thread's zero-bordered dout buffer (n, H+kh-1, W+kw-1, O), its window view
        (n, H, W, kh, kw, O) and the columns (n*H*W, kh*kw*O), made once per thread and size."""
        key = ("dx", n, o, np.dtype(dtype), threading.get_ident())
        found = self._buffers.get(key)
        if found is None:
            buf = np.zeros((n, self.h + self.kh - 1, self.w + self.kw - 1, o), dtype=dtype)
            windows = sliding_window_view(buf, (self.kh, self.kw), axis=(1, 2))
            windows = windows.transpose(0, 1, 2, 4, 5, 3)
            cols = np.empty((n * self.h * self.w, self.kh * self.kw * o), dtype=dtype)
            found = self._buffers[key] = (buf, windows, cols)
        return found

    def _dx_by_col2im(self, dy: np.ndarray, w_offsets: np.ndarray, dxp: np.ndarray) -> None:
        """Any stride: dcols per kernel offset (kh*kw, rows, C), added into the padded dxp.

        Each offset's block is contiguous, so col2im adds runs of Wo*C values (rows of dxp)
        rather than runs of C.
        """
        dcols = self._buffer("dcols", (self.kh * self.kw, len(dy), self.c), dy.dtype)
        np.matmul(dy, w_offsets, out=dcols)
        dcols = dcols.reshape(self.kh, self.kw, dxp.shape[0], self.ho, self.wo, self.c)
        dxp.fill(0)
        hs, ws = self.sh * (self.ho - 1) + 1, self.sw * (self.wo - 1) + 1
        for oi in range(self.kh):
            rows = dxp[:, oi : oi + hs : self.sh]
            for oj in range(self.kw):
                rows[:, :, oj : oj + ws : self.sw, :] += dcols[oi, oj]

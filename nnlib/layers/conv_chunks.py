"""Conv2D forward/backward in cache-sized chunks of samples (layers with kw*C >= 16).

A whole-batch im2col of a 32-channel 5x5 convolution on 128 images of 14x14 is an 80 MB matrix:
writing it, reading it back for three GEMMs and adding a same-sized dcols back in col2im all go
to main memory, and two cores share that bandwidth. Here every chunk of ``chunk_samples`` samples
goes through im2col -> GEMM (-> weight gradient -> dcols -> col2im) while its few MB stay in
cache, and the chunks are spread over nnlib.parallel's threads, so each core runs whole chunks
(no hand-off between a copy phase and a BLAS phase).

Determinism: chunk boundaries depend only on the batch size, each chunk writes its own samples
and its own weight-gradient slot, and the slots are summed in chunk order at the end, so the
results are bit-identical whatever the thread count or timing.

Layouts: xp is the zero-padded channels-last input (N, Hp, Wp, C); columns are (rows, K) with
K = kh*kw*C in (kh, kw, C) order; the output and dout are channels-last (N, Ho, Wo, O).
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnlib.parallel import blas_serial, over_samples

CHUNK_BYTES = 2 << 20  # im2col bytes per chunk: a chunk's columns and dcols stay in L2/L3


class ChunkedConv:
    """The geometry of one conv layer plus per-thread work buffers."""

    def __init__(self, kernel: tuple, stride: tuple, out_hw: tuple, channels: int) -> None:
        self.kh, self.kw = kernel
        self.sh, self.sw = stride
        self.ho, self.wo = out_hw
        self.c = channels
        self.k = self.kh * self.kw * channels
        self._buffers: dict[tuple, np.ndarray] = {}

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

    def _cols(self, xp: np.ndarray, s: int, e: int) -> np.ndarray:
        """im2col of samples s:e into this thread's buffer, (rows, K)."""
        win = sliding_window_view(xp[s:e], (self.kh, self.kw), axis=(1, 2))
        win = win[:, :: self.sh, :: self.sw].transpose(0, 1, 2, 4, 5, 3)  # (n,Ho,Wo,kh,kw,C)
        rows = (e - s) * self.ho * self.wo
        cols = self._buffer("cols", (rows, self.k), xp.dtype)
        np.copyto(cols.reshape(win.shape), win)
        return cols

    def _run(self, fn, n: int, itemsize: int) -> int:
        """Call fn(chunk index, start, stop) for every chunk, spread over threads; -> chunks."""
        step = self.chunk_samples(itemsize)
        chunks = -(-n // step)

        def part(first: int, last: int) -> None:
            for i in range(first, last):
                fn(i, i * step, min(n, (i + 1) * step))

        if blas_serial():  # BLAS on one thread: our threads run whole chunks, GEMMs included
            over_samples(part, chunks, n * self.ho * self.wo * self.k)
        else:  # chunk by chunk here, BLAS threads each GEMM (see nnlib.parallel)
            part(0, chunks)
        return chunks

    def forward(self, xp: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """xp (N, Hp, Wp, C), w (O, C, kh, kw) -> y (N, Ho, Wo, O)."""
        n, o = xp.shape[0], w.shape[0]
        wm = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(self.k, o))
        out = np.empty((n * self.ho * self.wo, o), dtype=xp.dtype)
        per = self.ho * self.wo

        def chunk(_: int, s: int, e: int) -> None:
            y = out[s * per : e * per]
            np.dot(self._cols(xp, s, e), wm, out=y)
            if b is not None:
                y += b

        self._run(chunk, n, xp.dtype.itemsize)
        return out.reshape(n, self.ho, self.wo, o)

    def backward(self, xp: np.ndarray, w: np.ndarray, d: np.ndarray, input_grad: bool):
        """d (N, Ho, Wo, O) -> (dW (O, C, kh, kw), db (O,), dxp (N, Hp, Wp, C) or None)."""
        n, o = xp.shape[0], w.shape[0]
        per = self.ho * self.wo
        d2 = d.reshape(n * per, o)
        step = self.chunk_samples(xp.dtype.itemsize)
        partial = np.empty((-(-n // step), self.k, o), dtype=xp.dtype)
        partial_b = np.empty((len(partial), o), dtype=xp.dtype)
        w_offsets = w.transpose(2, 3, 0, 1).reshape(self.kh * self.kw, o, self.c)
        dxp = np.empty(xp.shape, dtype=xp.dtype) if input_grad else None

        def chunk(i: int, s: int, e: int) -> None:
            dy = d2[s * per : e * per]
            np.dot(self._cols(xp, s, e).T, dy, out=partial[i])
            np.sum(dy, axis=0, out=partial_b[i])
            if dxp is None:
                return
            # dcols per kernel offset, (kh*kw, rows, C): each offset's block is contiguous, so
            # col2im adds runs of Wo*C values (rows of dxp) rather than runs of C.
            dcols = self._buffer("dcols", (self.kh * self.kw, len(dy), self.c), xp.dtype)
            np.matmul(dy, w_offsets, out=dcols)
            dcols = dcols.reshape(self.kh, self.kw, e - s, self.ho, self.wo, self.c)
            dx = dxp[s:e]
            dx.fill(0)
            hs, ws = self.sh * (self.ho - 1) + 1, self.sw * (self.wo - 1) + 1
            for oi in range(self.kh):
                rows = dx[:, oi : oi + hs : self.sh]
                for oj in range(self.kw):
                    rows[:, :, oj : oj + ws : self.sw, :] += dcols[oi, oj]

        self._run(chunk, n, xp.dtype.itemsize)
        dw = partial.sum(axis=0)  # chunk order, whatever thread ran which chunk
        dw = dw.reshape(self.kh, self.kw, self.c, o).transpose(3, 2, 0, 1)
        return np.ascontiguousarray(dw), partial_b.sum(axis=0), dxp

"""Stride-1 Conv2D through the FFT, for layers where it needs far fewer operations than im2col.

A convolution is a product in the frequency domain (Mathieu, Henaff & LeCun, "Fast Training of
Convolutional Networks through FFTs", ICLR 2014). With P x Q = the padded input's size, the
correlation of a padded input with a kh x kw kernel is, at every output pixel, a circular
convolution of period (P, Q) of the unpadded input x (at offset 0) with g, the kernel flipped and
rolled so that g[(pt - i) mod P, (pl - j) mod Q] = w[i, j]: no index wraps, so nothing aliases.
Per frequency f of the F = P * (Q // 2 + 1) of a real transform (scipy.fft's pocketfft):

    forward   Y[f] = X[f] @ G[f]               (N, C) @ (C, O)
    input     dX[f] = dY[f] @ conj(G[f]).T     (N, O) @ (O, C)
    weights   dG[f] = conj(X[f]).T @ dY[f]     (C, N) @ (N, O)

three complex GEMMs of F * N * C * O products each, against Ho * Wo * kh * kw * N * C * O for
im2col: 6.8x fewer for the 32->64 5x5 layer on 14x14 of bench/multihost_models.py's CNN, where the
layer's step went from 1.35x PyTorch's to below it (bench/cnn_layers.py). ``pays`` decides by a
cost estimate from the shape alone, so a model always takes the same path (bit-identical resume).

Work goes in chunks of samples (transforms and GEMMs stay in cache; chunks spread over
nnlib.parallel's threads when BLAS is serial), the weight gradient's spectrum summed in chunk
order, so results do not depend on the thread count. Layouts are channels-last: x (N, H, W, C),
y and dout (N, Ho, Wo, O); spectra (F, chunk, channels) for the GEMMs.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from nnlib.layers.conv_chunks import run_in_chunks
from nnlib.parallel import blas_serial, get_num_threads

SPECTRUM_BYTES = 4 << 20  # one chunk's input spectrum: it and its GEMM output stay in L2/L3

# What a transformed pixel costs next to one real multiply-add of a GEMM (pocketfft on 18 x 18
# transforms, float32, measured against OpenBLAS cgemm on one core: forward ~90, inverse ~170).
_TRANSFORM_COST = 128
_MIN_GAIN = 1.25  # the estimate must beat im2col by this much: both are only estimates


def pays(kernel: tuple, stride: tuple, padded_hw: tuple, channels: int, filters: int) -> bool:
    """Whether this layer's training step is cheaper through the FFT than through im2col."""
    (kh, kw), (p, q) = kernel, padded_hw
    if stride != (1, 1) or kh * kw < 9:
        return False
    ho, wo = p - kh + 1, q - kw + 1
    direct = ho * wo * kh * kw * channels * filters
    bins = p * (q // 2 + 1)
    fourier = 4 * bins * channels * filters + _TRANSFORM_COST * (channels + filters) * p * q
    return direct >= _MIN_GAIN * fourier


class FourierConv:
    """One stride-1 conv layer's geometry, and the input spectra kept from forward for backward."""

    def __init__(self, kernel: tuple, pad: tuple, in_hw: tuple, padded_hw: tuple) -> None:
        self.kh, self.kw = kernel
        self.pt, self.pl = pad  # padding before rows / columns
        self.h, self.w = in_hw
        self.p, self.q = padded_hw
        self.ho, self.wo = self.p - self.kh + 1, self.q - self.kw + 1
        self.bins = self.p * (self.q // 2 + 1)
        # where kernel offset (i, j) sits in g: rows (pt - i) mod P, columns (pl - j) mod Q
        self._g_rows = ((self.pt - np.arange(self.kh)) % self.p)[:, None]
        self._g_cols = ((self.pl - np.arange(self.kw)) % self.q)[None, :]
        self._spectra: list[np.ndarray] | None = None
        self._kernel: np.ndarray | None = None  # forward's kernel spectrum, kept with the spectra
        self._matrices: dict[tuple, tuple] = {}  # inverse-DFT rows per output grid and dtype
        self._taps: dict[np.dtype, np.ndarray] = {}  # the taps' DFT per dtype (kernel_spectrum)

    def chunk_samples(self, channels: int, itemsize: int) -> int:
        return max(1, SPECTRUM_BYTES // (self.bins * channels * 2 * itemsize))

    def _workers(self) -> int:
        """pocketfft threads: 1 inside nnlib's chunk threads, else nnlib's thread count."""
        return 1 if blas_serial() else get_num_threads()

    def _forward_transform(self, a: np.ndarray) -> np.ndarray:
        """a (n, rows, cols, channels) real -> (n, F, channels) complex, zero-padded to (P, Q)."""
        spectrum = scipy.fft.rfft2(a, s=(self.p, self.q), axes=(1, 2), workers=self._workers())
        return spectrum.reshape(a.shape[0], self.bins, a.shape[3])

    def _inverse_transform(self, spectrum: np.ndarray, rows, cols) -> np.ndarray:
        """(F, m) or (F, m, k) complex -> real (len(rows), len(cols), m[, k]): the inverse
        transform at the pixels ``rows`` x ``cols`` only (index ranges or arrays).

        Two complex GEMMs with the inverse DFT's rows for those pixels: pocketfft's c2r would
        compute all P x Q pixels at ~2x the time of its forward transform; this takes half of it
        (bench/cnn_layers.py). The real part is the c2r result: the fq = 0 and Nyquist columns
        weigh 1, the others 2, for the conjugate half the real transform leaves out.
        """
        heights, widths = self._inverse_matrices(rows, cols, spectrum.dtype)
        rest = spectrum.shape[1:]
        by_rows = (heights @ spectrum.reshape(self.p, -1)).reshape(
            len(heights), -1, math.prod(rest)
        )
        return np.matmul(widths, by_rows).real.reshape(len(heights), len(widths), *rest)

    def _inverse_matrices(self, rows, cols, dtype) -> tuple[np.ndarray, np.ndarray]:
        """exp(2 pi i r p / P) / P for r in rows; weighted exp(2 pi i c f / Q) / Q for c in cols."""
        key = (tuple(rows), tuple(cols), np.dtype(dtype))
        found = self._matrices.get(key)
        if found is None:
            r, c = np.asarray(rows, dtype=float), np.asarray(cols, dtype=float)
            freq = np.arange(self.q // 2 + 1)
            weight = np.where((freq == 0) | (2 * freq == self.q), 1.0, 2.0)
            heights = np.exp(2j * np.pi * np.outer(r, np.arange(self.p)) / self.p) / self.p
            widths = weight * np.exp(2j * np.pi * np.outer(c, freq) / self.q) / self.q
            found = self._matrices[key] = (heights.astype(dtype), widths.astype(dtype))
        return found

    def kernel_spectrum(self, w: np.ndarray) -> np.ndarray:
        """w (O, C, kh, kw) -> G (F, C, O), the transform of the flipped, rolled kernel g.

        g is zero but at its kh * kw taps, so G is the DFT of the taps alone: one GEMM of
        F x (kh * kw) x (C * O) products. pocketfft on g's C * O zero-padded P x Q planes took
        1.4-2.3 ms for the 32->64 5x5 layer on 14 x 14, this 0.46 ms (one thread).
        """
        o, c = w.shape[:2]
        taps = w.transpose(2, 3, 1, 0).reshape(self.kh * self.kw, c * o)
        return np.matmul(self._taps_dft(w.dtype), taps).reshape(self.bins, c, o)

    def _taps_dft(self, dtype) -> np.ndarray:
        """(F, kh * kw): exp(-2 pi i (fp r / P + fq c / Q)) at tap (i, j)'s place (r, c) in g,
        for every bin (fp, fq) of the real transform, in rfft2's order."""
        found = self._taps.get(np.dtype(dtype))
        if found is None:
            rows = np.broadcast_to(self._g_rows, (self.kh, self.kw)).ravel()
            cols = np.broadcast_to(self._g_cols, (self.kh, self.kw)).ravel()
            fp = np.arange(self.p)[:, None, None]
            fq = np.arange(self.q // 2 + 1)[None, :, None]
            phase = fp * rows / self.p + fq * cols / self.q  # (P, Q//2+1, taps)
            spectrum = np.exp(-2j * np.pi * phase).reshape(self.bins, self.kh * self.kw)
            complex_dtype = np.result_type(dtype, np.complex64)
            found = self._taps[np.dtype(dtype)] = spectrum.astype(complex_dtype)
        return found

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, keep: bool):
        """x (N, H, W, C), w (O, C, kh, kw) -> y (N, Ho, Wo, O); keep the spectra for backward."""
        n, o = x.shape[0], w.shape[0]
        kernel = self.kernel_spectrum(w)
        out = np.empty((n, self.ho, self.wo, o), dtype=x.dtype)
        step = self.chunk_samples(x.shape[3], x.dtype.itemsize)
        spectra: list = [None] * -(-n // step)

        def chunk(i: int, s: int, e: int) -> None:
            spectrum = self._forward_transform(x[s:e])
            product = np.matmul(spectrum.transpose(1, 0, 2), kernel)  # (F, n, O)
            y = self._inverse_transform(product, range(self.ho), range(self.wo))
            np.copyto(out[s:e], y.transpose(2, 0, 1, 3))
            if b is not None:
                out[s:e] += b
            if keep:
                spectra[i] = spectrum

        run_in_chunks(chunk, n, step, out.size)
        self._spectra, self._kernel = (spectra, kernel) if keep else (None, None)
        return out

    def backward(self, x: np.ndarray, w: np.ndarray, d: np.ndarray, input_grad: bool):
        """d (N, Ho, Wo, O) -> (dW (O, C, kh, kw), db (O,), dx (N, H, W, C) or None).

        ``x`` is the forward's input: its spectra are recomputed if forward did not keep them.
        """
        n, c, o = x.shape[0], x.shape[3], w.shape[0]
        step = self.chunk_samples(c, x.dtype.itemsize)
        chunks = -(-n // step)
        spectra = self._spectra if self._spectra is not None else [None] * chunks
        kernel = self._kernel if self._kernel is not None else self.kernel_spectrum(w)
        self._spectra = self._kernel = None
        kernel_adjoint = np.ascontiguousarray(kernel.conj().transpose(0, 2, 1))
        partial = np.empty((chunks, self.bins, c, o), dtype=np.result_type(x.dtype, np.complex64))
        partial_b = np.empty((chunks, o), dtype=x.dtype)
        dx = np.empty((n, self.h, self.w, c), dtype=x.dtype) if input_grad else None

        def chunk(i: int, s: int, e: int) -> None:
            spectrum = spectra[i] if spectra[i] is not None else self._forward_transform(x[s:e])
            dy = self._forward_transform(d[s:e]).transpose(1, 0, 2)  # (F, n, O)
            np.matmul(spectrum.conj().transpose(1, 2, 0), dy, out=partial[i])
            np.sum(d[s:e], axis=(0, 1, 2), out=partial_b[i])
            if dx is not None:
                product = np.matmul(dy, kernel_adjoint)  # (F, n, C)
                grid = self._inverse_transform(product, range(self.h), range(self.w))
                np.copyto(dx[s:e], grid.transpose(2, 0, 1, 3))

        run_in_chunks(chunk, n, step, d.size)
        # g's pixels at the kernel offsets, (kh, kw, C, O)
        dg = self._inverse_transform(partial.sum(axis=0), self._g_rows[:, 0], self._g_cols[0])
        dw = dg.transpose(3, 2, 0, 1)
        return np.ascontiguousarray(dw), partial_b.sum(axis=0), dx

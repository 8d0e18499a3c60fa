"""Matrix products on nnlib's threads while BLAS itself runs on one (``parallel.blas_serial()``).

A CNN runs BLAS on one thread so that its convolution chunks, GEMMs included, run on nnlib's
threads (nnlib.parallel). The model's other products (a few-channel first conv, the dense
layers) would then use one core. These helpers cut such a product into a fixed number of blocks
and hand the blocks to nnlib's threads:

- ``dot``: blocks of output rows or columns, each an independent product (no reduction);
- ``dot_sum``: blocks of the summed axis, partial products added in block order.

The blocks depend only on the shapes, never on the thread count, so results are bit-identical
for any number of threads from 2 on. With one thread ``dot`` runs the whole product: its blocks
would each repack the shared operand (dense 3136x128 forward 1.03 -> 1.20 ms), and a row or
column block of a GEMM gives the whole product's bits in every shape tried but one (a 33x1000
Fortran-ordered operand, off by 5e-5). ``dot_sum`` always adds its blocks, as the sum order
must not depend on threads. Without blas_serial both are plain ``np.dot`` on BLAS's threads.
"""

from __future__ import annotations

import numpy as np

from nnlib.parallel import blas_serial, get_num_threads, over_samples

BLOCKS = 4  # per product: enough for 2-4 threads, few enough that each block stays a real GEMM
_MIN_FLOPS = 1 << 22  # smaller products (~40 us at 100 GFLOP/s) stay whole


def _flops(a: np.ndarray, b: np.ndarray) -> int:
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


def _bounds(length: int) -> list[int]:
    return [length * i // BLOCKS for i in range(BLOCKS + 1)]


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D a (m, k), b (k, n) -> C-ordered (m, n).

    Split along the longer of m and n: every block then repacks only the smaller operand.
    np.matmul (not np.dot) takes strided slices and ``out`` column blocks without copying them.
    """
    m, n = a.shape[0], b.shape[1]
    flops = _flops(a, b)
    if not blas_serial() or get_num_threads() == 1 or max(m, n) < BLOCKS or flops < _MIN_FLOPS:
        return np.dot(a, b)
    out = np.empty((m, n), dtype=np.result_type(a, b))
    bounds = _bounds(max(m, n))

    def block(first: int, last: int) -> None:
        for i in range(first, last):
            s, e = bounds[i], bounds[i + 1]
            if m >= n:
                np.matmul(a[s:e], b, out=out[s:e])
            else:
                np.matmul(a, b[:, s:e], out=out[:, s:e])

    over_samples(block, BLOCKS, flops)
    return out


def dot_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D a (m, k), b (k, n) with a long summed axis k (a weight gradient summed
    over samples): k split over nnlib's threads, the partial products added in block order."""
    flops = _flops(a, b)
    if not blas_serial() or a.shape[1] < BLOCKS or flops < _MIN_FLOPS:
        return np.dot(a, b)
    bounds = _bounds(a.shape[1])
    partial = np.empty((BLOCKS, a.shape[0], b.shape[1]), dtype=np.result_type(a, b))

    def block(first: int, last: int) -> None:
        for i in range(first, last):
            s, e = bounds[i], bounds[i + 1]
            np.matmul(a[:, s:e], b[s:e], out=partial[i])

    over_samples(block, BLOCKS, flops)
    return partial.sum(axis=0)

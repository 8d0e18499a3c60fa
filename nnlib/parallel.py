"""Run the memory-bound NumPy parts of a layer (im2col copies, col2im, pooling) on a few threads.

BLAS already spreads the matrix products over its threads; the rest of a training step is plain
NumPy, which runs on one core. NumPy releases the GIL inside its loops, so splitting the batch
axis into contiguous slices and handing them to a small thread pool uses the other cores too.
Results are identical to a serial run: every slice writes only its own samples.

The thread count defaults to ``NNLIB_NUM_THREADS``, else ``OPENBLAS_NUM_THREADS``, else
``OMP_NUM_THREADS``, else the CPUs this process may run on (what OpenBLAS itself would use). A
process that limits BLAS threads at run time (threadpoolctl) should call ``set_num_threads`` with
the same number.

Multi-threaded BLAS called from several threads at once thrashes (OpenBLAS workers spin after
each call and fight ours for the cores), so GEMMs run on nnlib's threads only after
``set_blas_serial(True)``: the caller's promise that BLAS is limited to one thread. For a CNN that
is the faster setting (BLAS 1 thread, nnlib N threads); an MLP gains more from BLAS threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_MIN_WORK = 1 << 18  # elements per slice below which threading overhead outweighs the gain


def _default_threads() -> int:
    for name in ("NNLIB_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    if hasattr(os, "sched_getaffinity"):  # Linux: the CPUs this process may run on
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


_num_threads = _default_threads()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0  # a pool's threads do not survive fork (Celery's prefork workers): recreate


def set_num_threads(n: int) -> None:
    """Threads for nnlib's non-BLAS work (1 = serial)."""
    global _num_threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_threads must be an integer >= 1, got {n!r}")
    if n != _num_threads and _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    _num_threads = n


def get_num_threads() -> int:
    return _num_threads


_blas_serial = False


def set_blas_serial(serial: bool) -> None:
    """Declare that BLAS runs on one thread (threadpoolctl limits=1): nnlib may then call BLAS
    from its own threads (the chunked convolution runs whole chunks, GEMMs included, on them)."""
    global _blas_serial
    if not isinstance(serial, bool):
        raise ValueError(f"blas_serial must be a bool, got {serial!r}")
    _blas_serial = serial


def blas_serial() -> bool:
    return _blas_serial


def over_samples(fn: Callable[[int, int], None], n: int, work: int) -> None:
    """Call ``fn(start, stop)`` on contiguous sample ranges covering ``range(n)``.

    ``work`` is the total element count touched, used to stay serial for small batches.
    """
    global _pool, _pool_pid
    parts = min(_num_threads, n, max(1, work // _MIN_WORK))
    if parts <= 1:
        fn(0, n)
        return
    if _pool is None or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(max_workers=_num_threads, thread_name_prefix="nnlib")
        _pool_pid = os.getpid()
    bounds = [n * i // parts for i in range(parts + 1)]
    futures = [_pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, parts)]
    fn(bounds[0], bounds[1])  # the calling thread takes the first slice
    for future in futures:
        future.result()

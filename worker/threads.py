"""How many threads a training process may use, and who runs them (BLAS or nnlib).

Pool processes x threads must not exceed the cores: measured here, a 2-thread NumPy MLP slowed
4.1x when one core was busy elsewhere. Within that budget, convolutional models run faster with
BLAS on one thread and nnlib's sample chunks (GEMMs included) on nnlib's threads: threaded BLAS
under nnlib's threads thrashed (a CNN step used 2-3x its wall time in CPU). Dense-only models
have no chunked work, so BLAS keeps the threads.

``blas_kernels`` names the kernels NumPy's BLAS runs: an ``OPENBLAS_CORETYPE`` left in a
machine's environment can force an older core's (measured on an AVX-512 AMD EPYC: Haswell
kernels ran a 2048 float32 GEMM at 125 GFLOP/s, the ones OpenBLAS picks itself at 239), and
the worker logs it at start (``worker.signals``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from threadpoolctl import threadpool_info, threadpool_limits

from nnlib import parallel as nnlib_parallel
from worker.config import Settings


def blas_threads(settings: Settings) -> int:
    """Threads per process: the setting, else cores // pool processes (at least 1)."""
    if settings.blas_threads:
        return settings.blas_threads
    processes = int(os.environ.get("GRADQ_POOL_PROCESSES", "1"))
    return max(1, (os.cpu_count() or 1) // max(processes, 1))


def has_conv_layers(model_spec: dict | None) -> bool:
    layers = (model_spec or {}).get("layers", [])
    return any(isinstance(layer, dict) and layer.get("type") == "conv2d" for layer in layers)


@contextmanager
def thread_budget(settings: Settings, model_spec: dict | None = None):
    """Run the body with this process's thread share, split between BLAS and nnlib by model."""
    threads = blas_threads(settings)
    chunked = threads > 1 and has_conv_layers(model_spec)
    previous = (nnlib_parallel.get_num_threads(), nnlib_parallel.blas_serial())
    nnlib_parallel.set_num_threads(threads)
    nnlib_parallel.set_blas_serial(chunked or threads == 1)
    try:
        with threadpool_limits(limits=1 if chunked else threads):
            yield
    finally:
        nnlib_parallel.set_num_threads(previous[0])
        nnlib_parallel.set_blas_serial(previous[1])


def blas_kernels() -> tuple[str, str | None]:
    """(NumPy's BLAS libraries with the kernels each runs, e.g. "openblas 0.3.31 (Haswell
    kernels)"; the core ``OPENBLAS_CORETYPE`` forces, or None when OpenBLAS picks by CPU)."""
    pools = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    names = ", ".join(
        f"{pool['internal_api']} {pool['version']} ({pool.get('architecture') or '?'} kernels)"
        for pool in pools
    )
    return names or "none found", os.environ.get("OPENBLAS_CORETYPE") or None

"""How many threads a training process may use, and who runs them (BLAS or nnlib).

Pool processes x threads must not exceed the cores: measured here, a 2-thread NumPy MLP slowed
4.1x when one core was busy elsewhere. Within that budget, convolutional models run faster with
BLAS on one thread and nnlib's sample chunks (GEMMs included) on nnlib's threads: threaded BLAS
under nnlib's threads thrashed (a CNN step used 2-3x its wall time in CPU). Dense-only models
have no chunked work, so BLAS keeps the threads.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

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

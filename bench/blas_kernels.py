"""The BLAS kernels the benchmarks run gradq with: the ones OpenBLAS picks for this CPU.

OpenBLAS chooses its kernels from the CPU unless ``OPENBLAS_CORETYPE`` names a core. An
environment may name an older one. The fifth benchmark machine (AMD EPYC, family 26, with
AVX-512) sets ``Haswell``: AVX2 kernels, and a 2048 float32 GEMM on one thread at 125 GFLOP/s
against 239 with the kernels OpenBLAS picks itself (SkylakeX). PyTorch, the benchmarks' peer,
ignores that variable (oneDNN and MKL dispatch on the CPU), so keeping it would pit gradq's
forced kernels against torch's best.

The benchmarks that compare with PyTorch therefore call ``use_this_cpus_kernels()`` before
NumPy loads. It drops the variable by re-executing the script, and its children inherit the
cleaned environment. ``describe()`` says which kernels ran and what was dropped. To keep a
forced core, set ``GRADQ_BENCH_KEEP_BLAS_CORETYPE=1``.
"""

from __future__ import annotations

import os
import sys

KEEP = "GRADQ_BENCH_KEEP_BLAS_CORETYPE"
DROPPED = "GRADQ_BENCH_DROPPED_BLAS_CORETYPE"  # what the re-executed script was started with


def use_this_cpus_kernels() -> None:
    """Re-execute this script without ``OPENBLAS_CORETYPE`` (unless ``KEEP`` is set).

    Call before anything imports NumPy: OpenBLAS reads the variable once, when it loads.
    """
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if not forced or os.environ.get(KEEP) == "1":
        return
    if "numpy" in sys.modules:
        raise RuntimeError("use_this_cpus_kernels() must run before NumPy is imported")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env[DROPPED] = forced
    sys.stdout.flush()
    os.execve(sys.executable, sys.orig_argv, env)  # the same interpreter options and script


def describe() -> str:
    """One line: the BLAS library, version and kernels NumPy uses, and any core type dropped."""
    from worker.threads import blas_kernels  # what a worker logs at start

    kernels, forced = blas_kernels()
    line = f"NumPy BLAS: {kernels}"
    if os.environ.get(DROPPED):
        line += f"; OPENBLAS_CORETYPE={os.environ[DROPPED]} dropped (set {KEEP}=1 to keep it)"
    elif forced:
        line += f"; forced by OPENBLAS_CORETYPE={forced}"
    return line

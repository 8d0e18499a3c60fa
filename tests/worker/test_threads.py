"""The thread budget: processes x threads <= cores; the model decides who runs the threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from threadpoolctl import threadpool_info

from nnlib import parallel
from worker.config import Settings
from worker.threads import has_conv_layers, thread_budget

CNN = {
    "layers": [{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "dense", "units": 2}]
}
MLP = {"layers": [{"type": "dense", "units": 8}, {"type": "dense", "units": 2}]}


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_a_cnn_gets_serial_blas_and_nnlib_threads_then_everything_is_restored():
    before = (parallel.get_num_threads(), parallel.blas_serial(), _blas_threads())

    with thread_budget(Settings(blas_threads=2), CNN):
        assert _blas_threads() == {1}
        assert parallel.get_num_threads() == 2 and parallel.blas_serial() is True

    assert (parallel.get_num_threads(), parallel.blas_serial(), _blas_threads()) == before


def test_a_dense_model_gives_the_threads_to_blas():
    with thread_budget(Settings(blas_threads=2), MLP):
        assert _blas_threads() == {2}
        assert parallel.blas_serial() is False


def test_pool_processes_share_the_cores(monkeypatch):
    monkeypatch.setenv("GRADQ_POOL_PROCESSES", "64")

    with thread_budget(Settings(), MLP):
        assert _blas_threads() == {1} and parallel.get_num_threads() == 1


def test_conv_detection_reads_the_layer_types():
    assert has_conv_layers(CNN) and not has_conv_layers(MLP) and not has_conv_layers(None)


def _kernels_in_a_fresh_process(**env: str) -> list:
    """``blas_kernels()`` where OpenBLAS loads under ``env`` (it reads OPENBLAS_CORETYPE once)."""
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    code = "import json; from worker.threads import blas_kernels; print(json.dumps(blas_kernels()))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean | env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_blas_kernels_name_a_core_forced_by_the_environment():
    kernels, forced = _kernels_in_a_fresh_process(OPENBLAS_CORETYPE="Haswell")

    assert forced == "Haswell"
    assert "openblas" in kernels and "(Haswell kernels)" in kernels


def test_blas_kernels_report_no_forcing_when_openblas_picks_by_cpu():
    kernels, forced = _kernels_in_a_fresh_process()

    assert forced is None
    assert "openblas" in kernels and "kernels)" in kernels

"""Threaded non-BLAS work (im2col, col2im, pooling) gives bit-identical results to serial runs."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import build_model, parallel

SPEC = {
    "layers": [
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": 1},
        {"type": "avgpool2d", "pool_size": 2},
        {"type": "dense", "units": 4},
    ]
}


@pytest.fixture
def restore_threads():
    before = parallel.get_num_threads()
    yield
    parallel.set_num_threads(before)


def _run(threads: int):
    parallel.set_num_threads(threads)
    model = build_model(SPEC, [8, 32, 32], seed=0)
    x = np.zeros((40, 8, 32, 32), dtype=np.float32)  # large enough to be split across threads
    x[:, :, 8:24, 8:20] = np.random.default_rng(0).standard_normal((40, 8, 16, 12))
    y = model.forward(x, training=True)
    dx = model.backward(np.random.default_rng(1).standard_normal(y.shape).astype(np.float32))
    return y, dx, {k: v.copy() for k, v in model.gradients().items()}


def test_threaded_forward_and_backward_equal_serial(restore_threads, monkeypatch):
    calls = []
    original = parallel.ThreadPoolExecutor.submit
    monkeypatch.setattr(
        parallel.ThreadPoolExecutor,
        "submit",
        lambda self, *a, **k: calls.append(1) or original(self, *a, **k),
    )
    serial = _run(1)
    assert calls == []
    threaded = _run(3)

    assert len(calls) > 0  # the threaded path really ran
    np.testing.assert_array_equal(threaded[0], serial[0])
    np.testing.assert_array_equal(threaded[1], serial[1])
    for k, v in serial[2].items():
        np.testing.assert_array_equal(threaded[2][k], v)


def test_set_num_threads_rejects_bad_values(restore_threads):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="num_threads"):
            parallel.set_num_threads(bad)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"NNLIB_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "2"}, 3),
        ({"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "5"}, 2),
        ({"OMP_NUM_THREADS": "1"}, 1),
    ],
)
def test_default_thread_count_follows_the_blas_environment(monkeypatch, env, expected):
    for name in ("NNLIB_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert parallel._default_threads() == expected


@pytest.fixture
def restore_blas_serial():
    before = parallel.blas_serial()
    yield
    parallel.set_blas_serial(before)


def test_chunked_conv_on_threads_equals_serial_bit_for_bit(
    restore_threads, restore_blas_serial, monkeypatch
):
    import nnlib.layers.conv_chunks as conv_chunks

    monkeypatch.setattr(conv_chunks, "CHUNK_BYTES", 1 << 16)  # many chunks of a few samples
    parallel.set_blas_serial(True)  # GEMMs run on nnlib's threads too
    serial = _run(1)
    threaded = _run(3)
    again = _run(2)

    for result in (threaded, again):
        np.testing.assert_array_equal(result[0], serial[0])
        np.testing.assert_array_equal(result[1], serial[1])
        for k, v in serial[2].items():
            np.testing.assert_array_equal(result[2][k], v)


def test_set_blas_serial_rejects_non_bools(restore_blas_serial):
    with pytest.raises(ValueError, match="blas_serial"):
        parallel.set_blas_serial(1)

"""nnlib.gemm: products split over nnlib's threads under blas_serial, the same bits for any
thread count from 2 on (one thread runs dot whole), and the same values as one np.dot."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import gemm, parallel


@pytest.fixture
def serial_blas():
    threads, serial = parallel.get_num_threads(), parallel.blas_serial()
    parallel.set_blas_serial(True)
    yield
    parallel.set_num_threads(threads)
    parallel.set_blas_serial(serial)


SHAPES = {  # (m, k, n): tall (row blocks) and wide (column blocks), above gemm._MIN_FLOPS
    "tall": (5000, 27, 32),
    "wide": (64, 96, 3000),
}


def _operands(m, k, n):
    rng = np.random.default_rng(m + n)
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(
        np.float32
    )


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_dot_is_bit_identical_for_any_thread_count_and_equals_np_dot(serial_blas, shape):
    a, b = _operands(*shape)
    results = []
    for threads in (2, 3, 4):
        parallel.set_num_threads(threads)
        results.append(gemm.dot(a, b))
        results.append(gemm.dot(np.asfortranarray(a), b))  # a transposed operand, as x.T

    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])
    assert results[0].flags.c_contiguous
    np.testing.assert_allclose(results[0], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_dot_sum_adds_blocks_in_order_whatever_the_threads(serial_blas):
    a, b = _operands(27, 50_000, 32)  # a weight gradient: a long axis summed over
    results = []
    for threads in (1, 2, 3):
        parallel.set_num_threads(threads)
        results.append(gemm.dot_sum(a, b))

    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(results[0], expected, rtol=1e-3, atol=1e-2)


def test_threads_really_run_the_blocks(serial_blas, monkeypatch):
    seen = []
    original = np.matmul
    monkeypatch.setattr(np, "matmul", lambda *a, **k: seen.append(1) or original(*a, **k))
    parallel.set_num_threads(2)
    gemm.dot(*_operands(*SHAPES["tall"]))

    assert len(seen) == gemm.BLOCKS


@pytest.mark.parametrize("threads, serial", [(2, False), (1, True)], ids=["blas-threads", "one"])
def test_without_blas_serial_or_with_one_thread_dot_stays_whole(
    serial_blas, monkeypatch, threads, serial
):
    parallel.set_blas_serial(serial)  # not serial: BLAS has its own threads, nnlib adds none
    parallel.set_num_threads(threads)
    seen = []
    original = np.matmul
    monkeypatch.setattr(np, "matmul", lambda *a, **k: seen.append(1) or original(*a, **k))
    a, b = _operands(*SHAPES["tall"])

    np.testing.assert_array_equal(gemm.dot(a, b), np.dot(a, b))
    assert seen == []


def test_dense_backward_in_row_blocks_yields_each_block_and_matches_backward():
    from nnlib.layers.dense import Dense

    rng = np.random.default_rng(3)
    layer, twin = Dense(32), Dense(32)
    for dense in (layer, twin):
        dense.build((100,), np.random.default_rng(0), np.float32)
    x = rng.standard_normal((64, 100)).astype(np.float32)
    dout = rng.standard_normal((64, 32)).astype(np.float32)
    layer.forward(x, training=True)
    twin.forward(x, training=True)
    twin.backward(dout, input_grad=False)

    seen = []
    for start, stop in layer.backward_row_blocks(dout, [(60, 100), (0, 60)]):
        seen.append((start, stop))
        np.testing.assert_allclose(layer.grads["W"][start:stop], twin.grads["W"][start:stop],
                                   rtol=1e-6, atol=1e-6)  # fmt: skip
    assert seen == [(60, 100), (0, 60)]
    np.testing.assert_array_equal(layer.grads["b"], twin.grads["b"])

"""Conv2D through the FFT (nnlib/layers/conv_fourier.py): the same layer as im2col, to float64
round-off, on every geometry it can take; central differences agree with its backward; and the
shape rule sends only the layers where it pays through it."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib.layers.conv as conv_module
import nnlib.layers.conv_fourier as conv_fourier
from nnlib import parallel
from nnlib.gradcheck import layer_gradient_errors
from nnlib.layers import layer_from_spec
from nnlib.model import build_model

GEOMETRIES = [  # kernel_size, padding, in_c, out_c, hw
    (5, "same", 3, 4, (7, 7)),
    (3, "valid", 2, 3, (6, 5)),  # no padding: P, Q = H, W
    ([2, 4], "same", 3, 2, (5, 6)),  # even kernel: more padding after than before
    ([5, 3], 1, 2, 3, (6, 7)),  # integer padding, odd Q (no Nyquist column)
    (3, 4, 2, 2, (4, 5)),  # padding beyond the kernel's reach: border outputs see no x
    (4, "valid", 1, 2, (4, 4)),  # kernel as big as the input: one output pixel
]


def _conv(spec: dict, input_shape, dtype, fourier: bool, monkeypatch):
    """A built conv2d whose path is forced (the rule is tested on its own below)."""
    monkeypatch.setattr(conv_module, "pays", lambda *args: fourier)
    (layer,) = layer_from_spec({"type": "conv2d", **spec}, 0)
    layer.build(input_shape, np.random.default_rng(0), dtype)
    layer.params["b"] += 0.1  # a non-zero bias, so its gradient is checked away from zero
    assert (layer._fourier is not None) == fourier
    return layer


def _spec(kernel_size, padding, out_c) -> dict:
    return {"filters": out_c, "kernel_size": kernel_size, "padding": padding}


@pytest.mark.parametrize("kernel_size, padding, in_c, out_c, hw", GEOMETRIES)
def test_fourier_path_equals_im2col_in_float64(kernel_size, padding, in_c, out_c, hw, monkeypatch):
    spec, shape = _spec(kernel_size, padding, out_c), (in_c, *hw)
    fourier = _conv(spec, shape, np.float64, True, monkeypatch)
    direct = _conv(spec, shape, np.float64, False, monkeypatch)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, *shape))

    y = fourier.forward(x, True)
    y_ref = direct.forward(x, True)
    dout = rng.standard_normal(y_ref.shape)
    dx, dx_ref = fourier.backward(dout), direct.backward(dout)

    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-12)
    for name in ("W", "b"):
        np.testing.assert_allclose(fourier.grads[name], direct.grads[name], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel_size, padding, in_c, out_c, hw", GEOMETRIES)
def test_fourier_path_gradients_match_central_differences(
    kernel_size, padding, in_c, out_c, hw, monkeypatch
):
    layer = _conv(_spec(kernel_size, padding, out_c), (in_c, *hw), np.float64, True, monkeypatch)
    x = np.random.default_rng(3).standard_normal((2, in_c, *hw))

    errors = layer_gradient_errors(layer, x, np.random.default_rng(7))

    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-6, errors


def test_backward_after_an_eval_forward_recomputes_the_input_spectra(monkeypatch):
    layer = _conv(_spec(5, "same", 4), (3, 8, 8), np.float64, True, monkeypatch)
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8))
    dout = np.random.default_rng(4).standard_normal((2, 4, 8, 8))
    layer.forward(x, True)
    dx_after_training = layer.backward(dout)
    w_grad = layer.grads["W"].copy()

    layer.forward(x, False)
    dx_after_eval = layer.backward(dout)

    np.testing.assert_array_equal(dx_after_eval, dx_after_training)
    np.testing.assert_array_equal(layer.grads["W"], w_grad)


def test_float32_path_stays_within_float32_round_off_of_im2col(monkeypatch):
    spec, shape = _spec(5, "same", 64), (32, 14, 14)  # the multi-host CNN's second layer
    fourier = _conv(spec, shape, np.float32, True, monkeypatch)
    direct = _conv(spec, shape, np.float32, False, monkeypatch)
    x = np.random.default_rng(5).standard_normal((16, *shape)).astype(np.float32)

    y, y_ref = fourier.forward(x, True), direct.forward(x, True)
    dout = np.random.default_rng(6).standard_normal(y.shape).astype(np.float32)
    dx, dx_ref = fourier.backward(dout), direct.backward(dout)

    assert y.dtype == dx.dtype == fourier.grads["W"].dtype == np.float32
    for got, ref in ((y, y_ref), (dx, dx_ref), (fourier.grads["W"], direct.grads["W"])):
        assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize(
    "kernel, pad, padded", [((5, 5), (2, 2), (18, 18)), ((2, 4), (0, 1), (5, 7))]
)
def test_kernel_spectrum_is_the_real_dft_of_the_flipped_rolled_kernel(kernel, pad, padded):
    """The taps' DFT (one GEMM) against its definition: rfft2 of g, the kernel flipped and
    rolled into a zero P x Q plane (odd Q: no Nyquist column)."""
    geometry = conv_fourier.FourierConv(kernel, pad, (padded[0] - 2, padded[1] - 2), padded)
    w = np.random.default_rng(3).standard_normal((4, 3, *kernel))  # (O, C, kh, kw), float64
    g = np.zeros((*padded, 3, 4))
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            g[(pad[0] - i) % padded[0], (pad[1] - j) % padded[1]] = w[:, :, i, j].T
    expected = np.fft.rfft2(g, axes=(0, 1)).reshape(-1, 3, 4)

    np.testing.assert_allclose(geometry.kernel_spectrum(w), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "kernel, stride, padded, c, o, expected",
    [
        ((5, 5), (1, 1), (18, 18), 32, 64, True),  # the CNN's conv2: 6.8x fewer products
        ((5, 5), (1, 1), (32, 32), 1, 32, False),  # a first layer on one channel
        ((5, 5), (2, 2), (18, 18), 32, 64, False),  # strided: not a product of spectra
        ((3, 3), (1, 1), (16, 16), 16, 16, False),  # small kernel, few channels
        ((2, 2), (1, 1), (30, 30), 256, 256, False),  # under 9 taps
        ((7, 7), (1, 1), (34, 34), 64, 64, True),
    ],
)
def test_the_rule_takes_the_fourier_path_only_where_it_pays(kernel, stride, padded, c, o, expected):
    assert conv_fourier.pays(kernel, stride, padded, c, o) is expected


def _cnn_step(threads: int):
    parallel.set_num_threads(threads)
    spec = {
        "layers": [
            {"type": "conv2d", "filters": 32, "kernel_size": 5, "padding": "same"},
            {"type": "conv2d", "filters": 64, "kernel_size": 5, "padding": "same"},
        ]
    }
    model = build_model(spec, [8, 14, 14], seed=0)
    assert model.layers[0]._fourier is None and model.layers[1]._fourier is not None
    x = np.random.default_rng(0).standard_normal((37, 8, 14, 14)).astype(np.float32)
    y = model.forward(x, training=True)
    dx = model.backward(np.random.default_rng(1).standard_normal(y.shape).astype(np.float32))
    return y, dx, {k: v.copy() for k, v in model.gradients().items()}


def test_fourier_chunks_on_threads_equal_serial_bit_for_bit(monkeypatch):
    monkeypatch.setattr(conv_fourier, "SPECTRUM_BYTES", 1 << 16)  # many chunks of a few samples
    before = (parallel.get_num_threads(), parallel.blas_serial())
    parallel.set_blas_serial(True)  # chunks, GEMMs included, run on nnlib's threads
    try:
        serial, threaded = _cnn_step(1), _cnn_step(3)
    finally:
        parallel.set_num_threads(before[0])
        parallel.set_blas_serial(before[1])

    np.testing.assert_array_equal(threaded[0], serial[0])
    np.testing.assert_array_equal(threaded[1], serial[1])
    for name, grad in serial[2].items():
        np.testing.assert_array_equal(threaded[2][name], grad)

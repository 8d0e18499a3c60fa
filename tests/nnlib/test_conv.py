"""Conv2D: forward equals a direct loop definition; padding rules; layouts; dtype kept."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib.layers import layer_from_spec
from nnlib.layers.conv import conv_output_size


def _conv(spec, input_shape, dtype=np.float64):
    (layer, *rest) = layer_from_spec({"type": "conv2d", **spec}, 0)
    layer.build(input_shape, np.random.default_rng(0), dtype)
    if "b" in layer.params:
        layer.params["b"][:] = np.arange(layer.filters) * 0.1
    return layer


def _direct(x, w, b, stride, pad):
    """y[n,o,i,j] = b[o] + sum_{c,p,q} W[o,c,p,q] xpad[n,c,i*sh+p,j*sw+q] by explicit loops."""
    (pt, pb), (pl, pr) = pad
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    o, _, kh, kw = w.shape
    sh, sw = stride
    ho = (xp.shape[2] - kh) // sh + 1
    wo = (xp.shape[3] - kw) // sw + 1
    y = np.zeros((x.shape[0], o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return y + (0 if b is None else b[None, :, None, None])


@pytest.mark.parametrize(
    "spec, input_shape",
    [
        ({"filters": 4, "kernel_size": 3}, (2, 7, 7)),
        ({"filters": 3, "kernel_size": [2, 4], "stride": [1, 2], "padding": 1}, (3, 6, 9)),
        ({"filters": 2, "kernel_size": 3, "stride": 2, "padding": "same"}, (1, 7, 8)),
        ({"filters": 2, "kernel_size": 4, "padding": "same", "use_bias": False}, (2, 5, 6)),
        ({"filters": 3, "kernel_size": 3, "stride": 2, "padding": "same"}, (8, 7, 6)),
    ],
)
def test_forward_equals_direct_loop_definition(spec, input_shape):
    conv = _conv(spec, input_shape)
    x = np.random.default_rng(1).standard_normal((3, *input_shape))

    y = conv.forward(x, training=False)

    ref = _direct(x, conv.params["W"], conv.params.get("b"), conv.stride, (conv.pad_h, conv.pad_w))
    assert y.shape == (3, *conv.output_shape)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size, stride", [(28, 1), (28, 2), (7, 2), (5, 3)])
def test_same_padding_gives_ceil_of_size_over_stride(size, stride):
    for kernel in (1, 2, 3, 5):
        assert conv_output_size(size, kernel, stride, "same") == -(-size // stride)


def test_weight_layout_is_out_in_kh_kw():
    conv = _conv({"filters": 5, "kernel_size": [3, 2]}, (4, 6, 6))

    assert conv.params["W"].shape == (5, 4, 3, 2)
    assert conv.params["b"].shape == (5,)
    assert conv.output_shape == (5, 4, 5)


def test_float32_forward_and_backward_stay_float32():
    conv = _conv({"filters": 4, "kernel_size": 3, "padding": "same"}, (2, 6, 6), np.float32)
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 6)).astype(np.float32)

    y = conv.forward(x, training=True)
    dx = conv.backward(np.ones_like(y))

    assert y.dtype == dx.dtype == np.float32
    assert conv.grads["W"].dtype == conv.grads["b"].dtype == np.float32


def test_config_round_trips_through_the_registry():
    conv = _conv({"filters": 2, "kernel_size": 3, "stride": 2, "padding": "same"}, (1, 5, 5))
    (again, *_) = layer_from_spec(conv.config(), 0)

    assert again.config() == conv.config()


def test_work_buffers_are_reused_without_leaking_between_calls():
    conv = _conv({"filters": 3, "kernel_size": 3, "padding": "same"}, (8, 6, 6))
    rng = np.random.default_rng(2)
    x, other = rng.standard_normal((2, 4, 8, 6, 6))
    dout = rng.standard_normal((4, 3, 6, 6))
    y = conv.forward(x, training=True)
    conv.backward(dout)
    expected = {k: v.copy() for k, v in conv.grads.items()}

    conv.forward(other, training=True)
    y_eval = conv.forward(x, training=False)
    y_again = conv.forward(x, training=True)
    conv.backward(dout)

    np.testing.assert_array_equal(y_eval, y)
    np.testing.assert_array_equal(y_again, y)
    for k, v in expected.items():
        np.testing.assert_array_equal(conv.grads[k], v)


def test_backward_after_an_eval_forward_differentiates_that_forward():
    conv = _conv({"filters": 3, "kernel_size": 3, "padding": 1}, (8, 6, 6))
    rng = np.random.default_rng(4)
    x, other = rng.standard_normal((2, 3, 8, 6, 6))
    dout = rng.standard_normal((3, 3, 6, 6))
    conv.forward(x, training=True)
    dx_train = conv.backward(dout)
    expected = {k: v.copy() for k, v in conv.grads.items()}

    conv.forward(other, training=True)
    conv.forward(x, training=False)
    dx_eval = conv.backward(dout)

    np.testing.assert_allclose(dx_eval, dx_train, rtol=1e-12)
    for k, v in expected.items():
        np.testing.assert_allclose(conv.grads[k], v, rtol=1e-12)


def test_large_inference_batches_are_done_in_chunks_with_the_same_result(monkeypatch):
    import nnlib.layers.conv as conv_module

    conv = _conv({"filters": 3, "kernel_size": 3, "padding": "same"}, (2, 5, 5))
    x = np.random.default_rng(3).standard_normal((10, 2, 5, 5))
    whole = conv.forward(x, training=False)
    per_sample = 5 * 5 * (3 * 3 * 2 + 1) * 8
    monkeypatch.setattr(conv_module, "_EVAL_COLS_BYTES", 3 * per_sample)  # chunks of 3 samples

    chunked = conv.forward(x, training=False)

    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)


def test_chunks_of_samples_give_the_whole_batch_result(monkeypatch):
    import nnlib.layers.conv_chunks as conv_chunks

    conv = _conv({"filters": 4, "kernel_size": 3, "stride": 2, "padding": "same"}, (8, 7, 7))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 8, 7, 7))
    dout = rng.standard_normal((7, *conv.output_shape))
    y = conv.forward(x, training=True)
    dx = conv.backward(dout)
    grads = {k: v.copy() for k, v in conv.grads.items()}
    monkeypatch.setattr(conv_chunks, "CHUNK_BYTES", 2 * 4 * 4 * 72 * 8)  # 2 samples a chunk

    y_chunked = conv.forward(x, training=True)
    dx_chunked = conv.backward(dout)

    assert conv._chunked.chunk_samples(8) == 2
    np.testing.assert_allclose(y_chunked, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx_chunked, dx, rtol=1e-12, atol=1e-12)
    ref = _direct(x, conv.params["W"], conv.params["b"], conv.stride, (conv.pad_h, conv.pad_w))
    np.testing.assert_allclose(y_chunked, ref, rtol=1e-10, atol=1e-10)
    for k, v in grads.items():
        np.testing.assert_allclose(conv.grads[k], v, rtol=1e-12, atol=1e-12)


def _direct_dx(dout, w, input_hw, stride, pad):
    """dx by explicit loops: every output pixel adds W * dout into its padded input window."""
    (pt, pb), (pl, pr) = pad
    n, _, ho, wo = dout.shape
    _, c, kh, kw = w.shape
    sh, sw = stride
    h, wd = input_hw
    dxp = np.zeros((n, c, h + pt + pb, wd + pl + pr))
    for i in range(ho):
        for j in range(wo):
            dxp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw] += np.tensordot(
                dout[:, :, i, j], w, axes=([1], [0])
            )
    return dxp[:, :, pt : pt + h, pl : pl + wd]


@pytest.mark.parametrize("padding", ["same", "valid", 3])
def test_stride_one_input_gradient_in_row_blocks_matches_explicit_loops(monkeypatch, padding):
    import nnlib.layers.conv_chunks as conv_chunks

    conv = _conv({"filters": 3, "kernel_size": [3, 2], "padding": padding}, (8, 6, 5))
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 8, 6, 5))
    dout = rng.standard_normal((3, *conv.output_shape))
    # one image row per dx GEMM and one sample per chunk: every block boundary is crossed
    monkeypatch.setattr(conv_chunks, "DX_BLOCK_BYTES", 1)
    monkeypatch.setattr(conv_chunks, "CHUNK_BYTES", 1)
    conv.forward(x, training=True)

    dx = conv.backward(dout)

    expected = _direct_dx(dout, conv.params["W"], (6, 5), conv.stride, (conv.pad_h, conv.pad_w))
    np.testing.assert_allclose(dx, expected, rtol=1e-12, atol=1e-12)

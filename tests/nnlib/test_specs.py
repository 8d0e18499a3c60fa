"""Bad or impossible model specs raise ValueError naming the layer index, field and value."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import build_model


def _error(layers, input_shape=(1, 8, 8)) -> str:
    with pytest.raises(ValueError) as info:
        build_model({"layers": layers}, input_shape)
    return str(info.value)


OK = {"type": "flatten"}


@pytest.mark.parametrize(
    "bad, field, value",
    [
        ({"type": "dense", "units": 0}, "units", "0"),
        ({"type": "dense", "units": -3}, "units", "-3"),
        ({"type": "dense", "units": 2.5}, "units", "2.5"),
        ({"type": "dense", "units": True}, "units", "True"),
        ({"type": "dense", "units": 4, "activation": "swish"}, "activation", "'swish'"),
        ({"type": "dense", "units": 4, "use_bias": "yes"}, "use_bias", "'yes'"),
        ({"type": "dense", "units": 4, "unitz": 5}, "unitz", "5"),
        ({"type": "dense"}, "units", "nothing"),
        ({"type": "conv3d", "filters": 2}, "type", "'conv3d'"),
        ({"type": "dropout", "rate": 1.0}, "rate", "1.0"),
        ({"type": "dropout", "rate": -0.1}, "rate", "-0.1"),
        ({"type": "batchnorm", "momentum": 2}, "momentum", "2"),
        ({"type": "batchnorm", "eps": 0}, "eps", "0"),
        ({"type": "leaky_relu", "alpha": "big"}, "alpha", "'big'"),
        ({"type": "relu", "alpha": 0.1}, "alpha", "0.1"),
    ],
)
def test_invalid_field_values_name_index_field_and_value(bad, field, value):
    message = _error([OK, bad], input_shape=(8,))

    assert message.startswith("layer 1")
    assert repr(field) in message or field in message
    assert value in message


@pytest.mark.parametrize(
    "bad, field, value",
    [
        ({"type": "conv2d", "filters": 0, "kernel_size": 3}, "filters", "0"),
        ({"type": "conv2d", "filters": 2, "kernel_size": [3, 0]}, "kernel_size", "[3, 0]"),
        ({"type": "conv2d", "filters": 2, "kernel_size": [1, 2, 3]}, "kernel_size", "[1, 2, 3]"),
        ({"type": "conv2d", "filters": 2, "kernel_size": 3, "stride": 0}, "stride", "0"),
        (
            {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "full"},
            "padding",
            "'full'",
        ),
        ({"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": -1}, "padding", "-1"),
        ({"type": "maxpool2d", "pool_size": 0}, "pool_size", "0"),
        ({"type": "avgpool2d", "pool_size": 2, "stride": "2"}, "stride", "'2'"),
    ],
)
def test_invalid_conv_and_pool_fields(bad, field, value):
    message = _error([{"type": "relu"}, bad])

    assert message.startswith("layer 1")
    assert field in message and value in message


def test_conv_on_a_flat_input_is_impossible():
    message = _error(
        [{"type": "dense", "units": 4}, {"type": "conv2d", "filters": 2, "kernel_size": 3}],
        input_shape=(16,),
    )

    assert message.startswith("layer 1 (conv2d)")
    assert "kernel_size" in message and "[3, 3]" in message and "[4]" in message


def test_pool_larger_than_its_input_is_impossible():
    message = _error(
        [
            {"type": "conv2d", "filters": 2, "kernel_size": 5},  # 8x8 -> 4x4
            {"type": "maxpool2d", "pool_size": 2},  # -> 2x2
            {"type": "maxpool2d", "pool_size": 3},
        ]
    )

    assert message.startswith("layer 2 (maxpool2d)")
    assert "pool_size" in message and "[3, 3]" in message and "(2, 2)" in message


def test_kernel_larger_than_its_input_is_impossible():
    message = _error([{"type": "conv2d", "filters": 2, "kernel_size": 9}])

    assert (
        message.startswith("layer 0 (conv2d)") and "kernel_size" in message and "[9, 9]" in message
    )


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"layers": []}, "'layers'"),
        ({"layers": "dense"}, "'dense'"),
        ({"layers": [OK], "optimizer": {}}, "'optimizer'"),
        ({"layers": [{"units": 3}]}, "layer 0: field 'type' is required"),
        ({"layers": [OK, 7]}, "layer 1: must be an object"),
    ],
)
def test_malformed_model_specs(spec, fragment):
    with pytest.raises(ValueError, match=fragment):
        build_model(spec, (1, 8, 8))


@pytest.mark.parametrize("input_shape", [(), (0, 4), (2.5,), "28"])
def test_bad_input_shape_is_named(input_shape):
    with pytest.raises(ValueError, match="input_shape"):
        build_model({"layers": [OK]}, input_shape)


def test_float16_is_refused():
    with pytest.raises(ValueError, match="float16"):
        build_model({"layers": [OK]}, (4,), dtype=np.float16)

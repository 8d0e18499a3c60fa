"""infer_shapes: a model's shapes and parameter count from its spec, without building it."""

from __future__ import annotations

import tracemalloc

import pytest

import nnlib

SPECS = [
    ((64,), [{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dense", "units": 10}]),
    ((64,), [{"type": "batchnorm"}, {"type": "dense", "units": 3, "use_bias": False}]),
    (
        (3, 16, 16),
        [
            {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
            {"type": "batchnorm"},
            {"type": "relu"},
            {"type": "maxpool2d", "pool_size": 2},
            {"type": "conv2d", "filters": 4, "kernel_size": [3, 2], "stride": 2, "padding": 1},
            {"type": "avgpool2d", "pool_size": 2, "stride": 1},
            {"type": "dropout", "rate": 0.5},
            {"type": "flatten"},
            {"type": "dense", "units": 7, "activation": "softmax"},
        ],
    ),
]


@pytest.mark.parametrize(("input_shape", "layers"), SPECS)
def test_inferred_shapes_equal_the_built_models(input_shape, layers):
    spec = {"layers": layers}
    model = nnlib.build_model(spec, input_shape)

    shapes = nnlib.infer_shapes(spec, input_shape)

    assert shapes.num_parameters == model.num_parameters()
    assert shapes.output_shape == model.output_shape
    per_layer = {}
    for name, array in model.parameters().items():
        index = int(name.split(".")[0])
        per_layer[index] = per_layer.get(index, 0) + array.size
    assert [layer.parameters for layer in shapes.layers] == [
        per_layer.get(i, 0) for i in range(len(layers))
    ]
    assert shapes.batch_statistics_layers == [
        i for i, layer in enumerate(layers) if layer["type"] == "batchnorm"
    ]


@pytest.mark.parametrize(
    ("input_shape", "layers"),
    [
        ((64,), [{"type": "conv2d", "filters": 2, "kernel_size": 3}]),
        ((1, 4, 4), [{"type": "conv2d", "filters": 2, "kernel_size": 5}]),
        ((1, 4, 4), [{"type": "flatten"}, {"type": "maxpool2d", "pool_size": 2}]),
        ((2, 3), [{"type": "batchnorm"}]),
        ((2, 3), [{"type": "softmax"}]),
        ((4,), [{"type": "dense", "units": 0}]),
    ],
)
def test_impossible_specs_raise_the_same_error_as_building(input_shape, layers):
    spec = {"layers": layers}
    with pytest.raises(ValueError) as built:
        nnlib.build_model(spec, input_shape)
    with pytest.raises(ValueError) as inferred:
        nnlib.infer_shapes(spec, input_shape)
    assert str(inferred.value) == str(built.value)


def test_a_billion_parameters_are_counted_without_allocating_them():
    spec = {"layers": [{"type": "dense", "units": 8192, "activation": "relu"}] * 16}
    tracemalloc.start()
    try:
        shapes = nnlib.infer_shapes(spec, (64,))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert shapes.num_parameters == 64 * 8192 + 8192 + 15 * (8192 * 8192 + 8192)
    assert peak < 1024 * 1024  # the weights alone would be 4 GB of float32


def test_a_null_layer_field_builds_the_same_layer_as_leaving_it_out():
    with_nulls = {"type": "conv2d", "filters": 2, "kernel_size": 3, "stride": None,
                  "padding": None, "activation": None, "use_bias": None}  # fmt: skip
    built = nnlib.build_model({"layers": [with_nulls]}, (1, 6, 6))
    plain = nnlib.build_model(
        {"layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3}]}, (1, 6, 6)
    )
    assert built.layers[0].config() == plain.layers[0].config()
    assert built.num_parameters() == plain.num_parameters() == 20

"""Shape inference from a model spec alone: output shape and parameter count, no arrays built.

A spec of 10^9 parameters costs a few dicts here instead of 4 GB in ``build_model``, so a service
can refuse it by its size before allocating anything. The numbers come from the same
``output_shape_for`` / ``parameter_shapes`` methods that ``Layer.build`` uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnlib.layers.registry import layer_error, layer_from_spec
from nnlib.model import check_model_spec


@dataclass(frozen=True)
class LayerShape:
    """One spec layer: its index, type, output shape and number of parameters."""

    index: int
    type: str
    output_shape: tuple[int, ...]
    parameters: int
    batch_statistics: bool  # normalises with statistics of the batch it trains on


@dataclass(frozen=True)
class ModelShape:
    input_shape: tuple[int, ...]
    layers: tuple[LayerShape, ...]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape if self.layers else self.input_shape

    @property
    def num_parameters(self) -> int:
        """Exactly ``build_model(...).num_parameters()`` (Python ints: no overflow)."""
        return sum(layer.parameters for layer in self.layers)

    @property
    def batch_statistics_layers(self) -> list[int]:
        """Spec indices of the layers that train on batch statistics (batchnorm)."""
        return [layer.index for layer in self.layers if layer.batch_statistics]


def infer_shapes(model_spec: dict, input_shape) -> ModelShape:
    """Validate ``model_spec`` like ``build_model`` and infer every layer's shapes.

    Raises the same ValueError (naming the layer index, field and value) ``build_model`` would.
    """
    specs, shape = check_model_spec(model_spec, input_shape)
    first = shape
    out = []
    for index, spec in enumerate(specs):
        parameters, batch_statistics = 0, False
        for layer in layer_from_spec(spec, index):
            try:
                parameters += sum(math.prod(s) for s in layer.parameter_shapes(shape).values())
                shape = tuple(int(d) for d in layer.output_shape_for(shape))
            except ValueError as exc:
                raise layer_error(index, spec, str(exc)) from None
            batch_statistics = batch_statistics or layer.batch_statistics
        out.append(LayerShape(index, spec["type"], shape, parameters, batch_statistics))
    return ModelShape(first, tuple(out))

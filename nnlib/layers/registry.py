"""Layer specs (plain dicts) -> Layer objects, with validation that names index, field and value.

``layer_from_spec({"type": "dense", "units": 64, "activation": "relu"}, 0)`` returns
``[Dense(64), ActivationLayer("relu")]``: the ``activation`` field becomes a separate layer, but
both belong to spec layer 0, so parameter names stay ``"0.W"``, ``"0.b"``. A field set to null
takes its default.
"""

from __future__ import annotations

from typing import Any

from nnlib.activations import ACTIVATIONS
from nnlib.layers.activation import ActivationLayer
from nnlib.layers.base import Layer
from nnlib.layers.batchnorm import BatchNorm
from nnlib.layers.conv import Conv2D
from nnlib.layers.dense import Dense
from nnlib.layers.dropout import Dropout
from nnlib.layers.flatten import Flatten
from nnlib.layers.pooling import AvgPool2D, MaxPool2D

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type_name: cls for cls in (Dense, Conv2D, MaxPool2D, AvgPool2D, Flatten, Dropout, BatchNorm)
}


def known_types() -> list[str]:
    return sorted([*LAYER_TYPES, *ACTIVATIONS])


def layer_error(index: int, spec: Any, message: str) -> ValueError:
    kind = spec.get("type") if isinstance(spec, dict) else None
    where = f"layer {index} ({kind})" if isinstance(kind, str) else f"layer {index}"
    return ValueError(f"{where}: {message}")


def layer_from_spec(spec: dict, index: int) -> list[Layer]:
    """Validate one layer spec and build its (unbuilt) layers; ValueError names index and field."""
    if not isinstance(spec, dict):
        raise ValueError(f"layer {index}: must be an object with a 'type', got {spec!r}")
    kind = spec.get("type")
    if kind is None:
        raise ValueError(f"layer {index}: field 'type' is required, got {spec!r}")
    if not isinstance(kind, str) or (kind not in LAYER_TYPES and kind not in ACTIVATIONS):
        raise ValueError(
            f"layer {index}: field 'type' must be one of {known_types()}, got {kind!r}"
        )
    options = {k: v for k, v in spec.items() if k != "type"}
    if kind in ACTIVATIONS:
        allowed: tuple[str, ...] = ("alpha",) if kind == "leaky_relu" else ()
    else:
        allowed = LAYER_TYPES[kind].fields
    for field, value in options.items():
        if field not in allowed:
            raise layer_error(
                index,
                spec,
                f"unknown field {field!r} (value {value!r}); allowed fields: {list(allowed)}",
            )
    # null means "the default", as in optimizer specs: a spec with an explicit null and one
    # without the field build the same layer
    options = {k: v for k, v in options.items() if v is not None}
    try:
        if kind in ACTIVATIONS:
            return [ActivationLayer(kind, **options)]
        cls = LAYER_TYPES[kind]
        for field in cls.required:
            if field not in options:
                raise ValueError(f"field {field!r} is required, got nothing")
        layer = cls(**options)
    except ValueError as exc:
        raise layer_error(index, spec, str(exc)) from None
    activation = getattr(layer, "activation", None)
    if activation is not None:
        return [layer, ActivationLayer(activation)]
    return [layer]

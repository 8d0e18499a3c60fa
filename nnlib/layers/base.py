"""The Layer contract and the small value checks every layer's constructor uses.

A layer owns ``params`` and ``grads`` under the same names and ``buffers`` (state that is saved but
not trained). ``build`` creates parameters for a given input shape (without the batch axis) and
returns the output shape; ``forward`` caches what ``backward`` needs; ``backward`` assigns (never
accumulates) ``grads`` and returns the input gradient.

Constructor checks raise ``ValueError("field 'units' must be ..., got 0")``; the registry and the
model prefix the layer index and type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnlib.activations import ACTIVATIONS


class Layer:
    """Base class: no parameters, identity shape."""

    type_name = "layer"
    fields: tuple[str, ...] = ()  # spec fields besides "type"
    required: tuple[str, ...] = ()
    # True for layers whose training forward normalises with statistics of the batch it sees
    batch_statistics = False

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype) -> tuple:
        """Create parameters for inputs of ``input_shape``; return the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.output_shape_for(self.input_shape)
        return self.output_shape

    def output_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape for ``input_shape``; ValueError if impossible. Allocates nothing."""
        return input_shape

    def parameter_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Shapes of the parameters ``build`` would create for ``input_shape`` (none here)."""
        return {}

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Assign ``grads``; return dL/dx, or None when ``input_grad`` is False (first layer)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The spec dict of this layer (round-trips through ``layer_from_spec``)."""
        return {"type": self.type_name}

    def zero_grads(self) -> None:
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}


def check_int(field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"field {field!r} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_pair(field: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or a [h, w] pair of ints, each >= ``minimum``."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError(f"field {field!r} must be an int or [h, w], got {value!r}")
        try:
            return check_int(field, value[0], minimum), check_int(field, value[1], minimum)
        except ValueError:
            raise ValueError(
                f"field {field!r} must be integers >= {minimum}, got {value!r}"
            ) from None
    try:
        v = check_int(field, value, minimum)
    except ValueError:
        raise ValueError(
            f"field {field!r} must be an integer >= {minimum} or [h, w], got {value!r}"
        ) from None
    return v, v


def check_float(field: str, value: Any, low: float, high: float, *, high_open: bool = False):
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = low <= value and (value < high if high_open else value <= high)
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(
            f"field {field!r} must be a number in [{low}, {high}{bracket}, got {value!r}"
        )
    return value


def check_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"field {field!r} must be true or false, got {value!r}")
    return value


def check_activation(field: str, value: Any) -> str | None:
    if value is None or value == "linear":
        return None
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise ValueError(
            f"field {field!r} must be one of {sorted(ACTIVATIONS)} or null, got {value!r}"
        )
    return value


def spatial_input(field: str, value: Any, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H, W) from ``input_shape`` or a ValueError naming the layer's ``field`` and value."""
    if len(input_shape) != 3:
        raise ValueError(
            f"field {field!r} = {value!r} needs a (channels, height, width) input, "
            f"got input shape {list(input_shape)}"
        )
    return input_shape  # type: ignore[return-value]

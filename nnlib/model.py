"""Model: an ordered stack of layers built from a spec, with shape inference and named parameters.

Parameter and buffer names are ``"<spec layer index>.<name>"`` (``"0.W"``, ``"3.running_mean"``).
``parameters()`` / ``gradients()`` return the layers' own arrays (optimizers update parameters in
place); ``state_dict()`` returns copies.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from nnlib.layers.activation import ActivationLayer
from nnlib.layers.base import Layer
from nnlib.layers.dense import Dense, input_row_blocks
from nnlib.layers.flatten import Flatten
from nnlib.layers.pooling import MaxPool2D
from nnlib.layers.registry import layer_error, layer_from_spec


class Model:
    """Layers grouped by spec index; forward/backward run them in order / in reverse."""

    def __init__(
        self,
        spec: dict,
        input_shape: tuple[int, ...],
        groups: list[tuple[int, list[Layer]]],
        dtype,
    ) -> None:
        self.spec = spec
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype)
        self.groups = groups
        built = [layer for _, layers in groups for layer in layers]
        self.output_shape = built[-1].output_shape if built else self.input_shape
        self.layers: list[Layer] = _execution_order(built)  # the order forward runs them in
        # Backward without an input gradient can stop at the first layer that has parameters.
        self._first_trainable = next(
            (i for i, layer in enumerate(self.layers) if layer.params), len(self.layers)
        )
        first = self.first_trainable
        if isinstance(first, Dense):
            first.input_blocks = input_row_blocks(*first.params["W"].shape, self.dtype.itemsize)

    @property
    def first_trainable(self) -> Layer | None:
        """The first layer (in forward order) with parameters, or None."""
        index = self._first_trainable
        return self.layers[index] if index < len(self.layers) else None

    def primable(self) -> bool:
        """Whether ``forward(..., primed=...)`` applies: the first trainable layer is a Dense
        with ``input_blocks``, and only flatten layers (pure reshapes) come before it."""
        first = self.first_trainable
        before = self.layers[: self._first_trainable]
        return (
            isinstance(first, Dense)
            and first.input_blocks is not None
            and all(isinstance(layer, Flatten) for layer in before)
        )

    def forward(
        self, x: np.ndarray, training: bool, primed: np.ndarray | None = None
    ) -> np.ndarray:
        """(N, *input_shape) -> (N, *output_shape), in the model dtype; caches for backward.

        ``primed``: the first trainable layer's output for this ``x`` with the current weights
        (a ``BlockedProduct`` result, see ``primable``), used instead of computing it again.
        """
        x = np.asarray(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        if x.shape[1:] != self.input_shape:
            raise ValueError(
                f"input must have shape (N, {', '.join(map(str, self.input_shape))}), got {x.shape}"
            )
        for i, layer in enumerate(self.layers):
            if primed is not None and i == self._first_trainable:
                x = layer.adopt(x, primed)
            else:
                x = layer.forward(x, training)
        return x

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Assign every layer's gradients from dL/d(output); return dL/dx (None if not input_grad).

        ``input_grad=False`` skips the first trainable layer's input gradient (nobody needs
        dL/dx during training; for a first conv layer it is the most expensive part).
        """
        dout = np.asarray(dout)
        if dout.dtype != self.dtype:
            dout = dout.astype(self.dtype)
        stop = 0 if input_grad else self._first_trainable
        for i in range(len(self.layers) - 1, stop - 1, -1):
            dout = self.layers[i].backward(dout, input_grad=input_grad or i > stop)
        return dout if input_grad else None

    def _named(self, attr: str) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for index, layers in self.groups:
            for layer in layers:
                for name, arr in getattr(layer, attr).items():
                    out[f"{index}.{name}"] = arr
        return out

    def parameters(self) -> dict[str, np.ndarray]:
        return self._named("params")

    def gradients(self) -> dict[str, np.ndarray]:
        """Same keys and order as ``parameters()``; the arrays of the last ``backward``."""
        return self._named("grads")

    def buffers(self) -> dict[str, np.ndarray]:
        return self._named("buffers")

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.parameters().values()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameters and buffers."""
        return {k: v.copy() for k, v in {**self.parameters(), **self.buffers()}.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the existing parameters/buffers (keys and shapes must match exactly)."""
        own = {**self.parameters(), **self.buffers()}
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            raise ValueError(f"state_dict keys differ: missing {missing}, unexpected {unexpected}")
        for key, dst in own.items():
            src = np.asarray(state[key])
            if src.shape != dst.shape:
                raise ValueError(
                    f"state_dict[{key!r}] must have shape {dst.shape}, got {src.shape}"
                )
            if not np.issubdtype(src.dtype, np.number):
                raise ValueError(f"state_dict[{key!r}] must be numeric, got dtype {src.dtype}")
            np.copyto(dst, src, casting="unsafe")

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Eval-mode outputs for ``x`` (N, *input_shape), computed ``batch_size`` rows at a time."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        x = np.asarray(x)
        if len(x) == 0:
            return np.zeros((0, *self.output_shape), dtype=self.dtype)
        parts = [
            self.forward(x[i : i + batch_size], training=False)
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()


def _execution_order(layers: list[Layer]) -> list[Layer]:
    """Run ReLU/leaky ReLU after (not before) a following max-pool.

    Both are non-decreasing, so maxpool(relu(x)) == relu(maxpool(x)) exactly, and the gradient
    is the same too (same first-max position; where the window max is <= 0 both give zero). The
    activation then touches pool_size^2 fewer values, forward and backward.
    """
    order = list(layers)
    for i in range(len(order) - 1):
        act, pool = order[i], order[i + 1]
        if (
            isinstance(act, ActivationLayer)
            and act.name in ("relu", "leaky_relu")
            and isinstance(pool, MaxPool2D)
        ):
            order[i], order[i + 1] = pool, act
            act.input_shape = act.output_shape = pool.output_shape
    return order


def _check_input_shape(input_shape) -> tuple[int, ...]:
    if isinstance(input_shape, np.ndarray) and input_shape.ndim == 1:
        input_shape = input_shape.tolist()
    ok = isinstance(input_shape, Sequence) and not isinstance(input_shape, str) and input_shape
    ok = ok and all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 1 for d in input_shape
    )
    if not ok:
        raise ValueError(
            f"field 'input_shape' must be a non-empty list of integers >= 1, got {input_shape!r}"
        )
    return tuple(int(d) for d in input_shape)


def _init_hint(layers: list[Layer], following: Layer | None) -> None:
    """Tell a dense/conv layer which activation follows it (its own field or the next layer)."""
    first = layers[0]
    if not hasattr(first, "init_activation"):
        return
    activation = layers[-1] if len(layers) > 1 else following
    if isinstance(activation, ActivationLayer):
        first.init_activation = activation.name
        if activation.alpha is not None:  # validated by the layer, so never a bad value here
            first.init_negative_slope = activation.alpha


def check_model_spec(model_spec: dict, input_shape) -> tuple[list, tuple[int, ...]]:
    """``(layer specs, input shape)`` of a well-formed ``{"layers": [...]}``; else ValueError."""
    if not isinstance(model_spec, dict):
        raise ValueError(f"model spec must be an object with 'layers', got {model_spec!r}")
    unknown = [k for k in model_spec if k != "layers"]
    if unknown:
        raise ValueError(f"model spec: unknown field {unknown[0]!r} (allowed: ['layers'])")
    specs = model_spec.get("layers")
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"field 'layers' must be a non-empty list, got {specs!r}")
    return specs, _check_input_shape(input_shape)


def build_model(model_spec: dict, input_shape, seed: int = 0, dtype=np.float32) -> Model:
    """Validate ``{"layers": [...]}``, infer each layer's shape, initialise weights from ``seed``.

    Raises ValueError naming the layer index, field and value for bad or impossible specs.
    """
    specs, input_shape = check_model_spec(model_spec, input_shape)
    shape = input_shape
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"field 'seed' must be an integer >= 0, got {seed!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")

    rng = np.random.default_rng(int(seed))
    built = [layer_from_spec(spec, index) for index, spec in enumerate(specs)]
    groups: list[tuple[int, list[Layer]]] = []
    for index, (spec, layers) in enumerate(zip(specs, built, strict=True)):
        _init_hint(layers, built[index + 1][0] if index + 1 < len(built) else None)
        for layer in layers:
            try:
                shape = layer.build(shape, rng, dtype)
            except ValueError as exc:
                raise layer_error(index, spec, str(exc)) from None
        groups.append((index, layers))
    return Model(copy.deepcopy(model_spec), input_shape, groups, dtype)

"""Optimizers: update rules as small functions, and classes that hold their per-parameter state.

``build(spec, parameters)`` returns an optimizer whose ``step(gradients, lr=None)`` updates the
``parameters`` arrays in place (the model owns them). State arrays are keyed by the model-level
parameter name (``"m.0.W"``, ``"momentum.0.W"``) plus the step count ``"t"``, so a checkpoint is a
flat dict of arrays. The update rules themselves are in ``nnlib.update_rules``.
"""

from __future__ import annotations

import math

import numpy as np

from nnlib.update_rules import (
    adam_update,
    effective_gradient,
    global_norm_scale,
    rmsprop_update,
    sgd_update,
)

Arrays = dict[str, np.ndarray]


class Optimizer:
    """Common part: validated hyper-parameters, clipping, step count, state (de)serialisation."""

    slots: tuple[str, ...] = ()

    def __init__(self, parameters: Arrays, *, lr, weight_decay=0.0, clip_norm=None):
        self.parameters = parameters
        self.lr = _positive("lr", lr)
        self.weight_decay = _at_least_zero("weight_decay", weight_decay)
        self.clip_norm = None if clip_norm is None else _positive("clip_norm", clip_norm)
        self.t = 0
        self.state: dict[str, Arrays] = {
            slot: {name: np.zeros_like(p) for name, p in parameters.items()} for slot in self.slots
        }
        self._scratch = {name: np.empty_like(p) for name, p in parameters.items()}
        self._gscratch: Arrays = {}  # clipped / decayed gradients, allocated only when used

    def step(self, gradients: Arrays, lr: float | None = None) -> None:
        """Apply one update from ``gradients`` (same keys as the parameters; not modified)."""
        lr = self._begin(gradients, lr)
        scale = global_norm_scale(gradients, self.clip_norm)
        for name, param in self.parameters.items():
            self._update(name, param, gradients[name], lr, scale, None)

    def begin_step(self, gradients: Arrays, lr: float | None = None) -> None:
        """Start a step that ``update_span`` applies part by part, e.g. as each part of an
        averaged gradient arrives. Every element must get exactly one ``update_span``; the
        result has the bits of ``step`` (the rules are elementwise). ValueError with
        ``clip_norm``: its scale needs the whole gradient first."""
        if self.clip_norm is not None:
            raise ValueError("a step in spans cannot clip: clip_norm needs the whole gradient")
        self._span_step = (gradients, self._begin(gradients, lr))

    def update_span(self, name: str, start: int, stop: int) -> None:
        """Update elements [start, stop) of parameter ``name`` (C order) in the current
        ``begin_step``."""
        gradients, lr = self._span_step
        part = slice(start, stop)
        param = _flat(self.parameters[name])[part]
        self._update(name, param, _flat(gradients[name])[part], lr, 1.0, part)

    def _begin(self, gradients: Arrays, lr: float | None) -> float:
        if gradients.keys() != self.parameters.keys():
            raise ValueError(
                f"gradients: keys {sorted(gradients)} do not match parameters "
                f"{sorted(self.parameters)}"
            )
        lr = self.lr if lr is None else float(lr)
        if not lr >= 0.0 or math.isinf(lr):
            raise ValueError(f"step lr must be finite and >= 0, got {lr!r}")
        self.t += 1
        return lr

    def _gradient(self, name, param, grad, scale, weight_decay, part) -> np.ndarray:
        if (scale != 1.0 or weight_decay) and name not in self._gscratch:
            self._gscratch[name] = np.empty_like(self.parameters[name])
        out = self._gscratch.get(name)
        out = None if out is None else _at(out, part)
        return effective_gradient(param, grad, weight_decay=weight_decay, grad_scale=scale, out=out)

    def _state(self, slot: str, name: str, part: slice | None) -> np.ndarray:
        return _at(self.state[slot][name], part)

    def _update(self, name, param, grad, lr, scale, part) -> None:
        """Update ``param`` (the whole parameter, or the ``part`` of it in C order)."""
        raise NotImplementedError

    def state_dict(self) -> Arrays:
        """Copies of the state: ``"<slot>.<parameter name>"`` arrays and the step count ``"t"``."""
        out = {"t": np.array(self.t, dtype=np.int64)}
        for slot, arrays in self.state.items():
            out.update({f"{slot}.{name}": a.copy() for name, a in arrays.items()})
        return out

    def load_state_dict(self, state: Arrays) -> None:
        """Restore a ``state_dict()``; keys and shapes must match exactly."""
        expected = self.state_dict().keys()
        if set(state) != set(expected):
            raise ValueError(
                f"optimizer state: keys {sorted(state)} do not match expected {sorted(expected)}"
            )
        for slot, arrays in self.state.items():
            for name, a in arrays.items():
                value = np.asarray(state[f"{slot}.{name}"])
                if value.shape != a.shape:
                    raise ValueError(
                        f"optimizer state {slot}.{name}: shape {value.shape} != {a.shape}"
                    )
                np.copyto(a, value)
        self.t = int(state["t"])


class SGD(Optimizer):
    """SGD with optional (Nesterov) momentum and L2 weight decay, as in PyTorch (no dampening)."""

    def __init__(self, parameters, *, lr, momentum=0.0, nesterov=False, **common):
        self.momentum = _at_least_zero("momentum", momentum)
        if not isinstance(nesterov, bool):
            raise ValueError(f"optimizer.nesterov must be true or false, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("optimizer.nesterov: requires momentum > 0, got momentum 0")
        self.nesterov = nesterov
        self.slots = ("momentum",) if self.momentum else ()
        super().__init__(parameters, lr=lr, **common)

    def _update(self, name, param, grad, lr, scale, part):
        g = self._gradient(name, param, grad, scale, self.weight_decay, part)
        velocity = self._state("momentum", name, part) if self.momentum else None
        sgd_update(
            param, g, velocity, lr=lr, momentum=self.momentum, nesterov=self.nesterov,
            scratch=_at(self._scratch[name], part),
        )  # fmt: skip


class Adam(Optimizer):
    """Adam; ``weight_decay`` is an L2 penalty added to the gradient (AdamW decouples it)."""

    slots = ("m", "v")
    decoupled = False

    def __init__(self, parameters, *, lr, betas=(0.9, 0.999), eps=1e-8, **common):
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise ValueError(f"optimizer.betas must be a pair of numbers, got {betas!r}")
        self.beta1 = _unit_interval("betas[0]", betas[0])
        self.beta2 = _unit_interval("betas[1]", betas[1])
        self.eps = _positive("eps", eps)
        super().__init__(parameters, lr=lr, **common)

    def _update(self, name, param, grad, lr, scale, part):
        if self.decoupled and self.weight_decay:
            param *= 1.0 - lr * self.weight_decay
        l2 = 0.0 if self.decoupled else self.weight_decay
        g = self._gradient(name, param, grad, scale, l2, part)
        adam_update(
            param, g, self._state("m", name, part), self._state("v", name, part), t=self.t,
            lr=lr, beta1=self.beta1, beta2=self.beta2, eps=self.eps,
            scratch=_at(self._scratch[name], part),
        )  # fmt: skip


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the Adam step."""

    decoupled = True

    def __init__(self, parameters, *, weight_decay=0.01, **kwargs):
        super().__init__(parameters, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """RMSprop (PyTorch's form: eps added outside the square root)."""

    slots = ("square_avg",)

    def __init__(self, parameters, *, lr, alpha=0.99, eps=1e-8, **common):
        self.alpha = _unit_interval("alpha", alpha)
        self.eps = _positive("eps", eps)
        super().__init__(parameters, lr=lr, **common)

    def _update(self, name, param, grad, lr, scale, part):
        g = self._gradient(name, param, grad, scale, self.weight_decay, part)
        rmsprop_update(
            param, g, self._state("square_avg", name, part), lr=lr, alpha=self.alpha,
            eps=self.eps, scratch=_at(self._scratch[name], part),
        )  # fmt: skip


_COMMON = {"lr", "weight_decay", "clip_norm"}
_TYPES = {
    "sgd": (SGD, _COMMON | {"momentum", "nesterov"}),
    "adam": (Adam, _COMMON | {"betas", "eps"}),
    "adamw": (AdamW, _COMMON | {"betas", "eps"}),
    "rmsprop": (RMSprop, _COMMON | {"alpha", "eps"}),
}


def build(spec: dict, parameters: Arrays) -> Optimizer:
    """An optimizer from ``{"type": ..., "lr": ..., ...}``; ``None`` values mean the default.

    Unknown types, unknown keys and keys that do not apply to the type raise ValueError.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"optimizer: expected an object, got {spec!r}")
    kind = spec.get("type", "sgd")
    if kind not in _TYPES:
        raise ValueError(f"optimizer.type: unknown {kind!r}; expected one of {list(_TYPES)}")
    cls, allowed = _TYPES[kind]
    options = {k: v for k, v in spec.items() if k != "type" and v is not None}
    extra = sorted(set(options) - allowed)
    if extra:
        raise ValueError(f"optimizer: {extra} do not apply to {kind!r}; allowed {sorted(allowed)}")
    if "lr" not in options:
        raise ValueError("optimizer.lr: required")
    for name, p in parameters.items():
        if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
            raise ValueError(f"parameters[{name!r}]: expected a floating-point array")
    return cls(parameters, **options)


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of a C-contiguous array (a copy would silently drop the update)."""
    if not a.flags.c_contiguous:
        raise ValueError(f"update_span needs C-contiguous arrays, got strides {a.strides}")
    return a.reshape(-1)


def _at(a: np.ndarray, part: slice | None) -> np.ndarray:
    return a if part is None else _flat(a)[part]


def _number(field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"optimizer.{field} must be a finite number, got {value!r}")
    return float(value)


def _positive(field: str, value) -> float:
    if _number(field, value) <= 0:
        raise ValueError(f"optimizer.{field} must be > 0, got {value!r}")
    return float(value)


def _at_least_zero(field: str, value) -> float:
    if _number(field, value) < 0:
        raise ValueError(f"optimizer.{field} must be >= 0, got {value!r}")
    return float(value)


def _unit_interval(field: str, value) -> float:
    if not 0.0 <= _number(field, value) < 1.0:
        raise ValueError(f"optimizer.{field} must be in [0, 1), got {value!r}")
    return float(value)

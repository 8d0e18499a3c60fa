"""Learning-rate schedules: a function of the global step (0-based) built from a JSON spec.

All schedules take an optional linear warm-up: for ``step < warmup_steps`` the rate is
``base_lr * (step + 1) / warmup_steps``, so the first update already moves the weights. After the
warm-up, ``step`` schedules count from the step where warm-up ended, and ``cosine`` anneals over the
remaining ``steps_total - warmup_steps`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

_KEYS = {
    "constant": {"warmup_steps"},
    "step": {"warmup_steps", "step_size", "gamma"},
    "cosine": {"warmup_steps", "min_lr"},
}


def constant_lr(base_lr: float, step: int) -> float:
    return base_lr


def step_decay_lr(base_lr: float, step: int, *, step_size: int, gamma: float) -> float:
    """``base_lr * gamma ** (step // step_size)``."""
    return base_lr * gamma ** (step // step_size)


def cosine_lr(base_lr: float, step: int, *, steps: int, min_lr: float) -> float:
    """Half a cosine from ``base_lr`` at step 0 to ``min_lr`` at ``steps`` (held after)."""
    progress = min(step, steps) / steps if steps > 0 else 1.0
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build(spec: dict | None, base_lr: float, steps_total: int) -> Callable[[int], float]:
    """``lr(step)`` for ``{"type": "constant"|"step"|"cosine", "warmup_steps": 0, ...}``.

    ``None`` means constant. ``step``: ``step_size`` (steps, >= 1) and ``gamma`` (default 0.1);
    ``cosine``: ``min_lr`` (default 0, at most ``base_lr``).
    """
    spec = {"type": "constant"} if spec is None else spec
    if not isinstance(spec, dict):
        raise ValueError(f"schedule: expected an object, got {spec!r}")
    kind = spec.get("type", "constant")
    if kind not in _KEYS:
        raise ValueError(f"schedule.type: unknown {kind!r}; expected one of {list(_KEYS)}")
    options = {k: v for k, v in spec.items() if k != "type" and v is not None}
    extra = sorted(set(options) - _KEYS[kind])
    if extra:
        raise ValueError(f"schedule: {extra} do not apply to {kind!r}")
    warmup = _integer("warmup_steps", options.get("warmup_steps", 0), minimum=0)
    if kind == "constant":
        after = constant_lr
    elif kind == "step":
        if "step_size" not in options:
            raise ValueError("schedule.step_size: required for 'step'")
        step_size = _integer("step_size", options["step_size"], minimum=1)
        gamma = _number("gamma", options.get("gamma", 0.1))
        if gamma <= 0:
            raise ValueError(f"schedule.gamma must be > 0, got {gamma!r}")

        def after(base, step):
            return step_decay_lr(base, step, step_size=step_size, gamma=gamma)
    else:
        min_lr = _number("min_lr", options.get("min_lr", 0.0))
        if not 0 <= min_lr <= base_lr:
            raise ValueError(f"schedule.min_lr must be in [0, {base_lr}], got {min_lr!r}")
        steps = max(int(steps_total) - warmup, 0)

        def after(base, step):
            return cosine_lr(base, step, steps=steps, min_lr=min_lr)

    def lr(step: int) -> float:
        if step < warmup:
            return base_lr * (step + 1) / warmup
        return after(base_lr, step - warmup)

    return lr


def _number(field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"schedule.{field} must be a finite number, got {value!r}")
    return float(value)


def _integer(field: str, value, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"schedule.{field} must be an integer >= {minimum}, got {value!r}")
    return value

"""Central-difference numerical gradients for checking backward passes (use float64)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f() / d x by central differences, perturbing ``x`` in place (restored afterwards).

    ``f`` takes no arguments and reads ``x`` (e.g. a closure over a layer's parameter array).
    Error is O(eps^2) + round-off/eps: with float64 and eps=1e-6 about 1e-9 relative.
    """
    if x.dtype != np.float64:
        raise ValueError(f"numerical_gradient needs a float64 array, got {x.dtype}")
    grad = np.zeros_like(x)
    flat = x.reshape(-1)  # a view: x must be contiguous so perturbations reach f
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient needs a contiguous array")
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a| + |b|) over all entries (0 when both are zero)."""
    denom = np.maximum(np.abs(a) + np.abs(b), 1e-12).max()
    return float(np.abs(a - b).max() / denom)


def layer_gradient_errors(
    layer, x: np.ndarray, rng: np.random.Generator, training: bool = True
) -> dict[str, float]:
    """Relative errors of ``layer.backward`` against central differences, for dx and every param.

    The scalar checked is L = sum(forward(x) * R) for a fixed random R, so dL/dy = R. Returns
    ``{"x": err, "W": err, ...}``; the layer must be built in float64 and deterministic across
    calls (fix dropout masks first).
    """
    x = np.array(x, dtype=np.float64)
    r = rng.standard_normal(layer.forward(x, training).shape)

    def loss() -> float:
        return float((layer.forward(x, training) * r).sum())

    layer.forward(x, training)
    dx = layer.backward(r.copy())
    analytic = {"x": dx, **{k: g.copy() for k, g in layer.grads.items()}}
    numeric = {"x": numerical_gradient(loss, x)}
    for name, p in layer.params.items():
        numeric[name] = numerical_gradient(loss, p)
    return {k: relative_error(analytic[k], numeric[k]) for k in analytic}

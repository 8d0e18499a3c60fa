"""Optimizer update rules as small in-place functions (PyTorch's formulas, its conventions).

Each works in place with a scratch array: no temporaries in the hot path and no float64 upcasts
of float32 parameters (Python floats keep the array dtype). All but ``global_norm_scale`` are
elementwise, so applying one to parts of the arrays gives the bits of applying it to the whole.
"""

from __future__ import annotations

import math

import numpy as np


def global_norm_scale(gradients: dict[str, np.ndarray], clip_norm: float | None) -> float:
    """Factor (<= 1) that brings the global L2 norm of all gradients down to ``clip_norm``."""
    if clip_norm is None:
        return 1.0
    total = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in gradients.values()))
    return min(1.0, clip_norm / (total + 1e-6))


def effective_gradient(param, grad, *, weight_decay, grad_scale, out) -> np.ndarray:
    """``grad * grad_scale + weight_decay * param`` (L2 penalty), written to ``out`` if needed."""
    if grad_scale == 1.0 and weight_decay == 0.0:
        return grad
    np.multiply(grad, grad_scale, out=out)
    if weight_decay:
        out += weight_decay * param
    return out


def sgd_update(param, g, velocity, *, lr, momentum, nesterov, scratch) -> None:
    """``v = momentum v + g``; ``p -= lr (g + momentum v)`` (Nesterov) or ``p -= lr v``."""
    if velocity is None:
        update = g
    else:
        velocity *= momentum
        velocity += g
        if nesterov:
            np.multiply(velocity, momentum, out=scratch)
            scratch += g
            update = scratch
        else:
            update = velocity
    np.multiply(update, lr, out=scratch)
    param -= scratch


def adam_update(param, g, m, v, *, t, lr, beta1, beta2, eps, scratch) -> None:
    """Adam with bias correction: ``p -= lr/(1-b1^t) * m / (sqrt(v/(1-b2^t)) + eps)``."""
    m *= beta1
    np.multiply(g, 1.0 - beta1, out=scratch)
    m += scratch
    v *= beta2
    np.multiply(g, g, out=scratch)
    scratch *= 1.0 - beta2
    v += scratch
    np.sqrt(v, out=scratch)
    scratch *= 1.0 / math.sqrt(1.0 - beta2**t)
    scratch += eps
    np.divide(m, scratch, out=scratch)
    scratch *= lr / (1.0 - beta1**t)
    param -= scratch


def rmsprop_update(param, g, square_avg, *, lr, alpha, eps, scratch) -> None:
    """``s = alpha s + (1 - alpha) g^2``; ``p -= lr g / (sqrt(s) + eps)``."""
    square_avg *= alpha
    np.multiply(g, g, out=scratch)
    scratch *= 1.0 - alpha
    square_avg += scratch
    np.sqrt(square_avg, out=scratch)
    scratch += eps
    np.divide(g, scratch, out=scratch)
    scratch *= lr
    param -= scratch

"""Weight initialisation: He for ReLU-family layers, Xavier/Glorot otherwise.

Values are drawn in float64 from the model's ``numpy.random.Generator`` and then cast, so a
float32 and a float64 model built from the same seed hold the same weights up to rounding, and the
same seed always gives bit-identical weights.
"""

from __future__ import annotations

import math

import numpy as np

from nnlib.activations import RELU_FAMILY


def he_normal(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    fan_in: int,
    dtype,
    negative_slope: float = 0.0,
) -> np.ndarray:
    """N(0, gain^2 / fan_in) with gain^2 = 2 / (1 + negative_slope^2) (Kaiming, fan-in mode)."""
    std = math.sqrt(2.0 / (1.0 + negative_slope**2) / fan_in)
    return (rng.standard_normal(shape) * std).astype(dtype)


def xavier_uniform(
    rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int, dtype
) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio)."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def init_weights(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    dtype,
    activation: str | None,
    negative_slope: float = 0.0,
) -> np.ndarray:
    """He when the layer feeds a ReLU-family activation, Xavier/Glorot otherwise."""
    if activation in RELU_FAMILY:
        return he_normal(rng, shape, fan_in, dtype, negative_slope)
    return xavier_uniform(rng, shape, fan_in, fan_out, dtype)

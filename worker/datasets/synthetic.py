"""Synthetic 2-D-ish data sets for tests and demos, fixed entirely by their parameters."""

from __future__ import annotations

import numpy as np

from worker.datasets.base import DatasetError, RawSplits, split_raw

MAX_SAMPLES = 1_000_000
TEST_FRACTION = 0.2


def _int_param(params: dict, key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DatasetError(f"dataset.{key} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _float_param(params: dict, key: str, default: float, low: float, high: float) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise DatasetError(f"dataset.{key} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _balanced_labels(size: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(size, dtype=np.int64) % classes)


def _size_classes_seed(params: dict, classes: int, max_classes: int) -> tuple[int, int, int]:
    """The parameters every synthetic set has, validated (at least 2 samples per class)."""
    size = _int_param(params, "size", 1000, 10, MAX_SAMPLES)
    classes = _int_param(params, "classes", classes, 2, max_classes)
    seed = _int_param(params, "seed", 0, 0, 2**63 - 1)
    if size < 2 * classes:
        raise DatasetError(f"dataset.size must be at least 2 * classes = {2 * classes}, got {size}")
    return size, classes, seed


def blobs(params: dict) -> RawSplits:
    """Gaussian clusters: ``size`` samples (train + 20% test), ``classes`` centres drawn in
    [-5, 5]^``features``, per-cluster std ``noise``; x (n, features) float32."""
    size, classes, seed = _size_classes_seed(params, 3, 100)
    features = _int_param(params, "features", 2, 1, 1000)
    noise = _float_param(params, "noise", 1.0, 0.0, 100.0)
    rng = np.random.default_rng([seed, 1])
    centres = rng.uniform(-5.0, 5.0, size=(classes, features))
    y = _balanced_labels(size, classes, rng)
    x = centres[y] + noise * rng.standard_normal((size, features))
    return split_raw(x.astype(np.float32), y, classes, TEST_FRACTION, seed)


def spirals(params: dict) -> RawSplits:
    """Interleaved 2-D spirals, one arm per class (not linearly separable); x (n, 2) float32.

    Arm k at radius r in (0, 1] has angle ``2*pi*(turns*r + k/classes)``; ``noise`` is the std of
    Gaussian jitter added to both coordinates.
    """
    size, classes, seed = _size_classes_seed(params, 2, 20)
    noise = _float_param(params, "noise", 0.05, 0.0, 10.0)
    turns = _float_param(params, "turns", 1.0, 0.1, 10.0)
    rng = np.random.default_rng([seed, 2])
    y = _balanced_labels(size, classes, rng)
    radius = rng.uniform(0.05, 1.0, size)
    angle = 2 * np.pi * (turns * radius + y / classes)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x += noise * rng.standard_normal(x.shape)
    return split_raw(x.astype(np.float32), y, classes, TEST_FRACTION, seed)


SYNTHETIC = {"blobs": blobs, "spirals": spirals}
SYNTHETIC_KEYS = {
    "blobs": ("size", "classes", "features", "noise", "seed"),
    "spirals": ("size", "classes", "noise", "turns", "seed"),
}

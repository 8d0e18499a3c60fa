"""Input normalization fitted on the training part and replayed on prediction inputs.

The fitted parameters live in a JSON-able dict stored with the trained model, so that
``apply_preprocessing(x, preprocessing)`` treats a prediction input exactly like training data.
"""

from __future__ import annotations

import numpy as np

from worker.datasets.base import DatasetError

NORMALIZE_METHODS = ("scale", "standardize", None)
# a feature whose training std is below this (e.g. an always-black border pixel) is only centred
MIN_STD = 1e-6


def fit_preprocessing(
    x_train: np.ndarray, method: str | None, pixel_max: float | None = None
) -> dict:
    """Parameters of ``method`` computed from ``x_train`` (n, *input_shape) alone.

    ``"scale"`` divides by ``pixel_max`` (or the training part's largest |x|); ``"standardize"``
    subtracts the per-feature mean and divides by the per-feature std; ``None`` only casts.
    """
    if method not in NORMALIZE_METHODS:
        raise DatasetError(f"normalize must be one of 'scale', 'standardize', null; got {method!r}")
    prep: dict = {"normalize": method, "input_shape": [int(d) for d in x_train.shape[1:]]}
    if method == "scale":
        divisor = pixel_max if pixel_max is not None else float(np.max(np.abs(x_train), initial=0))
        prep["divisor"] = float(divisor) if divisor > 0 else 1.0
    elif method == "standardize":
        flat = x_train.reshape(len(x_train), -1).astype(np.float64)
        std = flat.std(axis=0)
        std[std < MIN_STD] = 1.0
        prep["mean"] = [float(v) for v in flat.mean(axis=0)]
        prep["std"] = [float(v) for v in std]
    return prep


def apply_preprocessing(x, preprocessing: dict) -> np.ndarray:
    """``x`` (n, *input_shape), or (n, anything of the same size), as normalized float32.

    Raises DatasetError when ``x`` cannot be reshaped to the stored input shape.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"inputs must be numeric, got dtype {x.dtype}")
    input_shape = tuple(preprocessing["input_shape"])
    size = int(np.prod(input_shape))
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != size:
        raise DatasetError(
            f"inputs must have shape (n, {', '.join(map(str, input_shape))}) "
            f"(or (n, {size})), got {tuple(x.shape)}"
        )
    x = x.reshape((x.shape[0], *input_shape)).astype(np.float32)
    method = preprocessing.get("normalize")
    if method == "scale":
        x /= np.float32(preprocessing["divisor"])
    elif method == "standardize":
        mean = np.asarray(preprocessing["mean"], dtype=np.float32).reshape(input_shape)
        std = np.asarray(preprocessing["std"], dtype=np.float32).reshape(input_shape)
        x -= mean
        x /= std
    elif method is not None:
        raise DatasetError(f"unknown normalize method {method!r} in preprocessing")
    return x

"""Losses: a mean over the batch, and its gradient with respect to the model's outputs.

Every loss keeps the dtype of the outputs (float32 in, float32 gradient out) and works on raw
outputs (logits): the softmax / sigmoid is fused into the loss, which is both stable and cheaper.
``forward`` caches what ``backward`` needs, like a layer.
"""

from __future__ import annotations

import math

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of (n, k) logits; exact for logits of any size (shifts by row max)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _check_rows(outputs: np.ndarray, targets: np.ndarray) -> None:
    if outputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"targets: expected {outputs.shape[0]} rows like outputs, got shape {targets.shape}"
        )
    if outputs.shape[0] == 0:
        raise ValueError("outputs: the batch is empty")


class CrossEntropy:
    """Softmax + cross-entropy on integer labels: outputs (n, k) logits, targets (n,) in [0, k).

    With label smoothing ``s`` the target distribution is ``(1 - s) * onehot + s / k``.
    """

    name = "cross_entropy"

    def __init__(self, label_smoothing: float = 0.0):
        if not isinstance(label_smoothing, (int, float)) or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        if outputs.ndim != 2:
            raise ValueError(f"outputs: cross_entropy expects (n, classes), got {outputs.shape}")
        targets = np.asarray(targets)
        if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(
                f"targets: cross_entropy expects 1-D integer labels, got {targets.dtype} "
                f"{targets.shape}"
            )
        _check_rows(outputs, targets)
        n, k = outputs.shape
        if targets.min() < 0 or targets.max() >= k:
            raise ValueError(
                f"targets: labels must be in [0, {k}), got [{targets.min()}, {targets.max()}]"
            )
        logp = log_softmax(outputs)
        rows = np.arange(n)
        s = self.label_smoothing
        per_sample = -(1.0 - s) * logp[rows, targets]
        if s:
            per_sample -= (s / k) * logp.sum(axis=1)
        self._cache = (logp, targets)
        return float(per_sample.mean())

    def backward(self) -> np.ndarray:
        """d(mean loss)/d(logits) = (softmax - target distribution) / n."""
        if self._cache is None:
            raise RuntimeError("backward() called before forward()")
        logp, targets = self._cache
        n, k = logp.shape
        grad = np.exp(logp)  # softmax, a fresh array we may scale in place
        s = self.label_smoothing
        if s:
            grad -= s / k
        grad[np.arange(n), targets] -= 1.0 - s
        grad *= 1.0 / n
        return grad

    def count_correct(self, outputs: np.ndarray, targets: np.ndarray) -> int | None:
        """Number of samples whose arg-max class equals the label."""
        return int((outputs.argmax(axis=1) == np.asarray(targets)).sum())


class MeanSquaredError:
    """Mean over all elements of ``(outputs - targets)**2``; targets reshaped to outputs' shape."""

    name = "mse"

    def __init__(self) -> None:
        self._diff: np.ndarray | None = None

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        targets = np.asarray(targets)
        _check_rows(outputs, targets)
        if targets.size != outputs.size:
            raise ValueError(f"targets: shape {targets.shape} does not fit outputs {outputs.shape}")
        diff = outputs - targets.reshape(outputs.shape).astype(outputs.dtype, copy=False)
        self._diff = diff
        return float(np.mean(np.square(diff)))

    def backward(self) -> np.ndarray:
        if self._diff is None:
            raise RuntimeError("backward() called before forward()")
        return self._diff * (2.0 / self._diff.size)

    def count_correct(self, outputs: np.ndarray, targets: np.ndarray) -> int | None:
        """Regression has no accuracy."""
        return None


class BinaryCrossEntropy:
    """Sigmoid + binary cross-entropy on logits; targets in [0, 1] with outputs' size.

    ``loss(z, t) = max(z, 0) - z t + log(1 + exp(-|z|))``: no overflow for any ``z``.
    """

    name = "binary_cross_entropy"

    def __init__(self) -> None:
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        targets = np.asarray(targets)
        _check_rows(outputs, targets)
        if targets.size != outputs.size:
            raise ValueError(f"targets: shape {targets.shape} does not fit outputs {outputs.shape}")
        t = targets.reshape(outputs.shape).astype(outputs.dtype, copy=False)
        if t.min() < 0 or t.max() > 1:
            raise ValueError(f"targets: must be in [0, 1], got [{t.min()}, {t.max()}]")
        z = outputs
        e = np.exp(-np.abs(z))
        per_element = np.maximum(z, 0) - z * t + np.log1p(e)
        self._cache = (np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype), t)
        return float(per_element.mean())

    def backward(self) -> np.ndarray:
        """d(mean loss)/dz = (sigmoid(z) - t) / size."""
        if self._cache is None:
            raise RuntimeError("backward() called before forward()")
        sigmoid, t = self._cache
        return (sigmoid - t) * (1.0 / sigmoid.size)

    def count_correct(self, outputs: np.ndarray, targets: np.ndarray) -> int | None:
        """Single-output classifiers: samples whose (logit > 0) matches the rounded target."""
        if outputs.ndim != 2 or outputs.shape[1] != 1:
            return None
        predicted = outputs[:, 0] > 0
        return int((predicted == (np.asarray(targets).reshape(-1) >= 0.5)).sum())


_LOSSES = {cls.name: cls for cls in (CrossEntropy, MeanSquaredError, BinaryCrossEntropy)}
NAMES = tuple(_LOSSES)


_OPTIONS = {"cross_entropy": {"label_smoothing"}, "mse": set(), "binary_cross_entropy": set()}


def get(name: str, **options) -> CrossEntropy | MeanSquaredError | BinaryCrossEntropy:
    """A fresh loss object by name; unknown names or options raise ValueError naming them."""
    if name not in _LOSSES:
        raise ValueError(f"loss: unknown name {name!r}; expected one of {list(_LOSSES)}")
    unknown = sorted(set(options) - _OPTIONS[name])
    if unknown:
        raise ValueError(f"loss {name!r}: unknown option(s) {unknown}")
    return _LOSSES[name](**options)


def from_spec(spec) -> CrossEntropy | MeanSquaredError | BinaryCrossEntropy:
    """A loss from a job spec's ``loss``: a name, or ``{"type": name, **options}`` (null options
    take their default)."""
    if isinstance(spec, str):
        return get(spec)
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ValueError(f"loss: expected a name or an object with a 'type', got {spec!r}")
    options = {k: v for k, v in spec.items() if k != "type" and v is not None}
    return get(spec["type"], **options)


def spec_name(spec) -> str:
    """The loss name of a job spec's ``loss`` (a name or ``{"type": ...}``)."""
    return spec if isinstance(spec, str) else spec.get("type") if isinstance(spec, dict) else ""


def has_accuracy(name: str, output_shape: tuple[int, ...]) -> bool:
    """Whether ``count_correct`` gives a count for this loss and output shape (not None)."""
    return name == "cross_entropy" or (name == "binary_cross_entropy" and output_shape == (1,))


def check_targets(
    name: str,
    output_shape: tuple[int, ...],
    num_classes: int | None,
    target_shape: tuple[int, ...] = (),
    target_range: tuple[float, float] | None = None,
) -> None:
    """Refuse (ValueError starting ``loss:``) a loss that cannot train these outputs on these
    targets: ``num_classes`` None means regression targets of per-sample ``target_shape`` with
    values in ``target_range`` (None: unknown); otherwise integer labels 0..num_classes-1."""
    width = math.prod(output_shape)
    per_sample = math.prod(target_shape)
    if name == "cross_entropy":
        if num_classes is None:
            raise ValueError(
                "loss: cross_entropy needs class labels, but the data set has regression "
                "targets (use mse, or binary_cross_entropy for targets in [0, 1])"
            )
        if tuple(output_shape) != (num_classes,):
            raise ValueError(
                f"loss: cross_entropy needs one logit per class: the model must output "
                f"[{num_classes}], it outputs {list(output_shape)}"
            )
    elif name == "mse":
        if num_classes is not None:
            raise ValueError(
                f"loss: mse needs regression targets, but the data set has {num_classes} classes "
                "(use cross_entropy, or upload the set with task 'regression')"
            )
        if width != per_sample:
            raise ValueError(
                f"loss: mse needs the model to output {per_sample} value(s) per sample like the "
                f"targets {list(target_shape)}, it outputs {list(output_shape)}"
            )
    elif name == "binary_cross_entropy":
        if num_classes is not None and num_classes != 2:
            raise ValueError(
                f"loss: binary_cross_entropy needs 2 classes (labels 0 and 1), the data set has "
                f"{num_classes} (use cross_entropy)"
            )
        if width != per_sample:
            raise ValueError(
                f"loss: binary_cross_entropy needs the model to output {per_sample} logit(s) per "
                f"sample, it outputs {list(output_shape)}"
            )
        low, high = target_range if target_range is not None else (0.0, 1.0)
        if num_classes is None and (low < 0.0 or high > 1.0):
            raise ValueError(
                f"loss: binary_cross_entropy needs targets in [0, 1], the data set's are in "
                f"[{low}, {high}]"
            )
    else:
        raise ValueError(f"loss: unknown name {name!r}; expected one of {list(_LOSSES)}")

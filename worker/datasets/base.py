"""What every data source produces before splitting and normalization, and the one error type."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DatasetError(ValueError):
    """A data set cannot be loaded or an upload is refused; the message names the field and why."""


@dataclass(frozen=True)
class RawSplits:
    """Unnormalized arrays of one data set, exactly as every worker must see them.

    ``x_*`` keep their stored dtype (uint8 pixels stay uint8) and are already channels-first:
    images ``(n, c, h, w)``, tabular ``(n, d)``. ``y_*`` are int64 labels (classification) or
    float32 targets (regression, ``num_classes is None``). ``pixel_max`` is the value ``"scale"``
    divides by (255 for byte images, 16 for digits); ``None`` means: the training part's max |x|.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int | None
    classes: list[str] | None
    is_image: bool
    pixel_max: float | None = None
    label_column: str | None = None  # a CSV's label column: ``gradq predict`` drops it by name


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)`` (sorted, int64): ``round(fraction * n)`` samples held out,
    spread over the classes in proportion to their sizes.

    Deterministic in ``(y, fraction, seed)``; for regression targets (float) the split is a plain
    random one. Each class keeps at least one sample.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    if np.issubdtype(y.dtype, np.integer):
        groups = [np.flatnonzero(y == label) for label in np.unique(y)]
    else:
        groups = [np.arange(len(y))]
    counts = _quotas(np.array([len(g) for g in groups]), fraction)
    held = [rng.permutation(members)[:count] for members, count in zip(groups, counts, strict=True)]
    held_out = np.sort(np.concatenate(held)).astype(np.int64)
    keep = np.setdiff1d(np.arange(len(y)), held_out).astype(np.int64)
    return keep, held_out


def split_raw(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    fraction: float,
    seed: int,
    *,
    is_image: bool = False,
    pixel_max: float | None = None,
) -> RawSplits:
    """A labelled set split into train/test per class (``fraction`` held out, fixed by ``seed``)."""
    train, test = stratified_split(y, fraction, seed)
    return RawSplits(
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        num_classes=num_classes,
        classes=[str(k) for k in range(num_classes)],
        is_image=is_image,
        pixel_max=pixel_max,
    )


def _quotas(sizes: np.ndarray, fraction: float) -> np.ndarray:
    """Per-group counts summing to round(fraction * total) (largest remainders first), each
    group keeping at least one member."""
    exact = fraction * sizes
    counts = np.minimum(np.floor(exact).astype(np.int64), sizes - 1)
    missing = int(round(fraction * sizes.sum())) - int(counts.sum())
    for group in np.argsort(-(exact - counts), kind="stable"):
        if missing <= 0:
            break
        if counts[group] < sizes[group] - 1:
            counts[group] += 1
            missing -= 1
    return counts

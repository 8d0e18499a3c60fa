"""Validation of uploaded data sets (.npz or .csv) before anything is stored.

Every refusal is a DatasetError naming the array (or CSV line and column) and the problem.
The readers (npz_upload, csv_upload) produce features in their stored form; this module checks
the targets and records what the store keeps. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from worker.datasets.base import DatasetError, RawSplits
from worker.datasets.csv_labels import MAX_CLASSES
from worker.datasets.csv_upload import parse_csv
from worker.datasets.npz_upload import DatasetTooLarge, read_npz

TASKS = ("classification", "regression")


@dataclass
class UploadedArrays:
    """An accepted upload: arrays ready to store (x uint8 or float32, channels-first; y int64
    labels or float32 targets) and the facts the store records about them."""

    arrays: dict[str, np.ndarray]
    filename: str
    sha256: str
    task: str
    num_classes: int | None
    is_image: bool
    pixel_max: float | None
    classes: list[str] | None = None  # class names of text CSV labels (default "0".."C-1")
    label_column: str | None = None  # the CSV's label column (None for an .npz)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.arrays["x_train"].shape[1:])

    def to_raw(self) -> RawSplits:
        return raw_from_arrays(
            self.arrays,
            self.num_classes,
            self.is_image,
            self.pixel_max,
            classes=self.classes,
            label_column=self.label_column,
        )


def raw_from_arrays(
    arrays: dict,
    num_classes: int | None,
    is_image: bool,
    pixel_max: float | None,
    *,
    classes: list[str] | None = None,
    label_column: str | None = None,
) -> RawSplits:
    """RawSplits of stored upload arrays (the store and ``{"path": ...}`` use this); classes
    default to "0".."C-1"."""
    if classes is None and num_classes:
        classes = [str(k) for k in range(num_classes)]
    return RawSplits(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays.get("x_test"),
        y_test=arrays.get("y_test"),
        num_classes=num_classes,
        classes=classes if num_classes else None,
        is_image=is_image,
        pixel_max=pixel_max,
        label_column=label_column,
    )


def validate_upload(
    filename: str,
    content: bytes | BinaryIO,
    label_column: str | None = None,
    task: str | None = None,
    max_bytes: int | None = None,
    *,
    max_columns: int | None = None,
    on_planned_bytes: Callable[[int], None] | None = None,
) -> UploadedArrays:
    """Check an uploaded ``.npz`` or ``.csv`` (bytes or a seekable binary file) and return its
    arrays; raise DatasetError if refused (DatasetTooLarge over a size limit).

    ``task`` forces "classification" or "regression" (default: integer labels classify, float
    targets regress). ``max_bytes`` (file and expanded arrays) and ``max_columns`` (CSV) default
    to the settings. ``on_planned_bytes(n)`` gets an .npz's stored size before it is decompressed
    and may raise to refuse it (a storage quota).
    """
    if max_bytes is None or max_columns is None:
        from worker.config import get_settings

        settings = get_settings()
        max_bytes = settings.max_dataset_bytes if max_bytes is None else max_bytes
        max_columns = settings.max_dataset_columns if max_columns is None else max_columns
    if task not in (None, *TASKS):
        raise DatasetError(f"task must be 'classification' or 'regression', got {task!r}")
    file = io.BytesIO(content) if isinstance(content, bytes | bytearray) else content
    size = file.seek(0, io.SEEK_END)
    if size > max_bytes:
        raise DatasetTooLarge(
            f"file: {size} bytes is over the limit of {max_bytes} bytes (GRADQ_MAX_DATASET_BYTES)"
        )
    sha256 = _sha256(content if isinstance(content, bytes | bytearray) else file)
    file.seek(0)
    lower, classes, label_name = filename.lower(), None, None
    if lower.endswith(".npz"):
        arrays, is_image = read_npz(file, max_bytes, on_planned_bytes)
    elif lower.endswith(".csv"):
        (arrays, classes, label_name), is_image = parse_csv(file, label_column, max_columns), False
        if classes is not None and task == "regression":
            raise DatasetError(
                f"task: regression needs numeric targets, but label column {label_name!r} "
                f"holds text ({', '.join(map(repr, classes[:3]))}...)"
            )
    else:
        raise DatasetError(f"file: {filename!r} must end in .npz or .csv")
    arrays, resolved_task, num_classes = _check_targets(arrays, task)
    pixel_max = 255.0 if is_image and arrays["x_train"].dtype == np.uint8 else None
    return UploadedArrays(
        arrays=arrays,
        filename=filename,
        sha256=sha256,
        task=resolved_task,
        num_classes=num_classes,
        is_image=is_image,
        pixel_max=pixel_max,
        classes=classes,
        label_column=label_name,
    )


def _sha256(source: bytes | bytearray | BinaryIO) -> str:
    """Hex SHA-256 of the bytes, or of the whole file read in blocks (left at its start)."""
    if isinstance(source, bytes | bytearray):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    source.seek(0)
    for block in iter(lambda: source.read(1 << 20), b""):
        digest.update(block)
    source.seek(0)
    return digest.hexdigest()


def _check_targets(arrays: dict, task: str | None) -> tuple[dict, str, int | None]:
    out = dict(arrays)
    for name in ("y_train", "y_test"):
        if name not in arrays:
            continue
        y, x_name = arrays[name], "x" + name[1:]
        if y.dtype.kind not in "biuf":
            raise DatasetError(f"{name}: dtype {y.dtype} is not numeric")
        if y.ndim == 0 or len(y) != len(arrays[x_name]):
            raise DatasetError(
                f"{name}: has {len(y) if y.ndim else 0} entries but {x_name} has "
                f"{len(arrays[x_name])} samples"
            )
        if 0 in y.shape[1:]:
            raise DatasetError(f"{name}: shape {list(y.shape)} has an empty target dimension")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DatasetError(f"{name}: contains NaN or infinity")
    y_train = arrays["y_train"]
    if task is None:
        task = "regression" if y_train.dtype.kind == "f" else "classification"
    if task == "regression":
        for name in ("y_train", "y_test"):
            if name in arrays:
                with np.errstate(over="ignore"):  # overflow is reported just below
                    out[name] = arrays[name].astype(np.float32)
                if not np.isfinite(out[name]).all():
                    raise DatasetError(f"{name}: targets too large for float32")
        return out, task, None
    for name in ("y_train", "y_test"):
        if name in arrays:
            out[name] = _labels(name, arrays[name])
    num_classes = int(out["y_train"].max()) + 1
    if num_classes > MAX_CLASSES:
        raise DatasetError(
            f"y_train: label {num_classes - 1} implies {num_classes} classes; "
            f"at most {MAX_CLASSES} are supported"
        )
    missing = np.flatnonzero(np.bincount(out["y_train"], minlength=num_classes) == 0)
    if missing.size:
        raise DatasetError(
            f"y_train: classes must be 0..{num_classes - 1} with at least one "
            f"sample each; no sample of class {', '.join(map(str, missing[:5]))}"
        )
    if "y_test" in out and out["y_test"].size and out["y_test"].max() >= num_classes:
        raise DatasetError(
            f"y_test: label {int(out['y_test'].max())} is not a class of y_train "
            f"(0..{num_classes - 1})"
        )
    return out, task, num_classes


def _labels(name: str, y: np.ndarray) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(
            f"{name}: class labels must be one integer per sample, got shape {y.shape}"
        )
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise DatasetError(
            f"{name}: classification needs integer labels, found fractional "
            "values (omit task or use task='regression')"
        )
    if y.size and y.min() < 0:
        raise DatasetError(f"{name}: labels must be in [0, C), found {y.min()}")
    # before the cast: 1e30 or a uint64 above int64 became a negative int64, and the refusal was
    # NumPy's "'list' argument must have no negative elements" from bincount
    if y.size and y.max() >= MAX_CLASSES:
        top = y.max()
        shown = (f"{top:g}", f"{top + 1:g}") if y.dtype.kind == "f" else (top, int(top) + 1)
        raise DatasetError(
            f"{name}: label {shown[0]} implies {shown[1]} classes; "
            f"at most {MAX_CLASSES} are supported"
        )
    return y.astype(np.int64)

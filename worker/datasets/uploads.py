"""Validation of uploaded data sets (.npz or .csv) before anything is stored.

Every refusal is a DatasetError naming the array (or CSV column) and the problem. Nothing is ever
unpickled: ``.npz`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass

import numpy as np

from worker.datasets.base import DatasetError, RawSplits
from worker.datasets.csv_upload import parse_csv

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
TASKS = ("classification", "regression")
MAX_CLASSES = 10_000


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

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.arrays["x_train"].shape[1:])

    def to_raw(self) -> RawSplits:
        return raw_from_arrays(self.arrays, self.num_classes, self.is_image, self.pixel_max)


def raw_from_arrays(
    arrays: dict, num_classes: int | None, is_image: bool, pixel_max: float | None
) -> RawSplits:
    """RawSplits of stored upload arrays (the store and ``{"path": ...}`` use this)."""
    return RawSplits(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays.get("x_test"),
        y_test=arrays.get("y_test"),
        num_classes=num_classes,
        classes=[str(k) for k in range(num_classes)] if num_classes else None,
        is_image=is_image,
        pixel_max=pixel_max,
    )


def validate_upload(
    filename: str,
    content: bytes,
    label_column: str | None = None,
    task: str | None = None,
    max_bytes: int | None = None,
) -> UploadedArrays:
    """Check an uploaded ``.npz`` or ``.csv`` and return its arrays; raise DatasetError if refused.

    ``task`` forces "classification" or "regression" (default: integer labels classify, float
    targets regress). ``max_bytes`` defaults to ``Settings.max_dataset_bytes``.
    """
    if max_bytes is None:
        from worker.config import get_settings

        max_bytes = get_settings().max_dataset_bytes
    if task not in (None, *TASKS):
        raise DatasetError(f"task must be 'classification' or 'regression', got {task!r}")
    if len(content) > max_bytes:
        raise DatasetError(
            f"file: {len(content)} bytes is over the limit of {max_bytes} bytes "
            "(GRADQ_MAX_DATASET_BYTES)"
        )
    lower = filename.lower()
    if lower.endswith(".npz"):
        arrays = _read_npz(content, max_bytes)
    elif lower.endswith(".csv"):
        arrays = parse_csv(content, label_column)
    else:
        raise DatasetError(f"file: {filename!r} must end in .npz or .csv")
    arrays, is_image = _check_features(arrays)
    arrays, resolved_task, num_classes = _check_targets(arrays, task)
    pixel_max = 255.0 if is_image and arrays["x_train"].dtype == np.uint8 else None
    return UploadedArrays(
        arrays=arrays,
        filename=filename,
        sha256=hashlib.sha256(content).hexdigest(),
        task=resolved_task,
        num_classes=num_classes,
        is_image=is_image,
        pixel_max=pixel_max,
    )


def _read_npz(content: bytes, max_bytes: int) -> dict[str, np.ndarray]:
    try:
        npz = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"file: not a readable .npz archive ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DatasetError("file: a single .npy array was sent; expected an .npz archive")
    with npz:
        unknown = sorted(set(npz.files) - set(ARRAY_NAMES))
        if unknown:
            raise DatasetError(
                f"{unknown[0]}: unexpected array; an .npz may hold only {', '.join(ARRAY_NAMES)}"
            )
        for required in ("x_train", "y_train"):
            if required not in npz.files:
                raise DatasetError(f"{required}: missing from the .npz archive")
        expanded = sum(info.file_size for info in npz.zip.infolist())
        if expanded > max_bytes:
            raise DatasetError(
                f"file: arrays expand to {expanded} bytes, over the limit of "
                f"{max_bytes} bytes (GRADQ_MAX_DATASET_BYTES)"
            )
        arrays = {}
        for name in npz.files:
            try:
                arrays[name] = npz[name]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise DatasetError(
                        f"{name}: object arrays (pickled data) are not accepted; store numbers"
                    ) from None
                raise DatasetError(f"{name}: unreadable array ({exc})") from None
    if ("x_test" in arrays) != ("y_test" in arrays):
        present, absent = ("x_test", "y_test") if "x_test" in arrays else ("y_test", "x_test")
        raise DatasetError(f"{absent}: missing while {present} is present (send both or neither)")
    return arrays


def _check_features(arrays: dict) -> tuple[dict, bool]:
    out = dict(arrays)
    for name in ("x_train", "x_test"):
        if name not in arrays:
            continue
        x = arrays[name]
        if x.dtype.kind not in "biuf":
            raise DatasetError(f"{name}: dtype {x.dtype} is not numeric")
        if x.ndim < 2 or x.ndim > 4:
            raise DatasetError(
                f"{name}: expected 2 to 4 dimensions (samples first), got shape {x.shape}"
            )
        if len(x) == 0:
            raise DatasetError(f"{name}: has no samples")
        if x.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
            if bad.size:
                raise DatasetError(
                    f"{name}: {bad.size} samples contain NaN or infinity (first at index {bad[0]})"
                )
        out[name] = _channels_first(name, x)
    if "x_test" in arrays and arrays["x_test"].shape[1:] != arrays["x_train"].shape[1:]:
        raise DatasetError(
            f"x_test: samples have shape {arrays['x_test'].shape[1:]}, but "
            f"x_train's have {arrays['x_train'].shape[1:]}"
        )
    is_image = arrays["x_train"].ndim >= 3 and arrays["x_train"].dtype.kind in "biu"
    bytes_ok = all(
        x.dtype.kind in "biu" and x.min() >= 0 and x.max() <= 255
        for k, x in out.items()
        if k in ("x_train", "x_test")
    )
    for name in ("x_train", "x_test"):
        if name in out:
            with np.errstate(over="ignore"):  # overflow is reported just below
                out[name] = out[name].astype(np.uint8 if bytes_ok else np.float32)
            if not np.isfinite(out[name]).all():
                raise DatasetError(f"{name}: values too large for float32")
    return out, is_image


def _channels_first(name: str, x: np.ndarray) -> np.ndarray:
    """(n, h, w) -> (n, 1, h, w); (n, h, w, c) with c <= 4 -> (n, c, h, w)."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] > 4:
        if x.shape[3] > 4:
            raise DatasetError(
                f"{name}: images must be (n, c, h, w) or (n, h, w, c) with at "
                f"most 4 channels, got shape {x.shape}"
            )
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


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
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DatasetError(f"{name}: contains NaN or infinity")
    y_train = arrays["y_train"]
    if task is None:
        task = "regression" if y_train.dtype.kind == "f" else "classification"
    if task == "regression":
        for name in ("y_train", "y_test"):
            if name in arrays:
                out[name] = arrays[name].astype(np.float32)
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
    return y.astype(np.int64)

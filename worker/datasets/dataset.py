"""``load_dataset``: a job spec's ``dataset`` section -> split, normalized float32 arrays.

Every worker that loads the same spec with the same seed gets bit-identical arrays: built-in sets
are fixed, the validation part is drawn from the training split by ``seed``, and normalization
statistics come from the training part only (never validation or test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worker.datasets.base import DatasetError, RawSplits, stratified_split
from worker.datasets.builtin import BUILTIN_KEYS, builtin_source
from worker.datasets.cache import RAW_CACHE
from worker.datasets.preprocessing import apply_preprocessing, fit_preprocessing
from worker.datasets.synthetic import SYNTHETIC

COMMON_KEYS = ("validation_split", "normalize")
SOURCE_KEYS = ("name", "id", "path")
UPLOAD_KEYS = ("label_column", "task")  # only for {"path": ...}; an id's upload fixed them
DEFAULT_VALIDATION_SPLIT = 0.1
_UNSET = object()


@dataclass
class Dataset:
    """A loaded data set: x float32 (n, *input_shape), y int64 labels or float32 targets."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    input_shape: tuple[int, ...]
    num_classes: int | None  # None: regression
    classes: list[str] | None
    preprocessing: dict = field(default_factory=dict)
    name: str = ""
    label_column: str | None = None  # the CSV's label column, recorded with the model

    @property
    def task(self) -> str:
        return "regression" if self.num_classes is None else "classification"


def load_dataset(spec: dict, *, seed: int = 0, redis=None, settings=None) -> Dataset:
    """Load ``spec`` (``{"name": ...}``, ``{"id": "ds_..."}`` or ``{"path": "file.npz"}`` plus
    ``validation_split`` and ``normalize``); DatasetError names the offending field."""
    if settings is None:
        from worker.config import get_settings

        settings = get_settings()
    if not isinstance(spec, dict):
        raise DatasetError(f"dataset must be an object, got {type(spec).__name__}")
    sources = [key for key in SOURCE_KEYS if key in spec]
    if len(sources) != 1:
        raise DatasetError(f"dataset needs exactly one of 'name', 'id', 'path'; got {sources}")
    source = sources[0]
    # a set's own option given as null takes its default, as when left out (the API stores
    # explicit nulls); only ``normalize`` has null as a value of its own
    extra = {k: v for k, v in spec.items() if k not in (source, *COMMON_KEYS) and v is not None}
    raw, label, default_normalize = _raw_source(source, spec[source], extra, redis, settings)
    split = _validation_split(spec.get("validation_split", DEFAULT_VALIDATION_SPLIT))
    normalize = spec.get("normalize", _UNSET)
    if normalize is _UNSET:
        normalize = default_normalize
    return _assemble(raw, split, normalize, seed, label)


def _raw_source(source: str, value, extra: dict, redis, settings):
    """``(RawSplits, display name, default normalize)`` of the spec's source."""
    if source == "name":
        if value not in BUILTIN_KEYS:
            raise DatasetError(
                f"dataset.name must be one of {', '.join(BUILTIN_KEYS)}; got {value!r}"
            )
        _refuse_unknown(extra, BUILTIN_KEYS[value], f"data set {value!r}")
        key, loader = builtin_source(value, extra, Path(settings.data_dir))
        default = None if value in SYNTHETIC else "scale"
        return RAW_CACHE.get(key, loader), value, default
    if source == "path":
        _refuse_unknown(extra, UPLOAD_KEYS, "a local file")
        raw = _local_file(value, extra, settings)
    else:
        _refuse_unknown(extra, (), "an uploaded data set")
        raw = _uploaded(value, redis, settings)
    return raw, str(value), "scale" if raw.is_image else "standardize"


def _refuse_unknown(extra: dict, allowed, what: str) -> None:
    for key in extra:
        if key not in allowed:
            options = ", ".join((*COMMON_KEYS, *allowed))
            raise DatasetError(f"dataset.{key}: not an option of {what} (options: {options})")


def _validation_split(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise DatasetError(f"dataset.validation_split must be in [0, 1), got {value!r}")
    return float(value)


def _local_file(path, extra: dict, settings) -> RawSplits:
    from worker.datasets.uploads import validate_upload

    file = Path(path)
    if not file.is_file():
        raise DatasetError(f"dataset.path: no such file {str(file)!r}")
    stat = file.stat()
    label_column, task = extra.get("label_column"), extra.get("task")
    key = ("path", str(file.resolve()), stat.st_size, stat.st_mtime_ns, label_column, task)

    def load() -> RawSplits:
        with file.open("rb") as stream:
            return validate_upload(
                file.name,
                stream,
                label_column=label_column,
                task=task,
                max_bytes=settings.max_dataset_bytes,
                max_columns=settings.max_dataset_columns,
            ).to_raw()

    return RAW_CACHE.get(key, load)


def _uploaded(dataset_id, redis, settings) -> RawSplits:
    if redis is None:
        raise DatasetError(f"dataset.id {dataset_id!r}: uploaded sets need a Redis connection")
    from worker.datasets.store import DatasetStore
    from worker.storage.datasets import dataset_blobs

    store = DatasetStore(redis, dataset_blobs(redis, settings))
    info = store.info(dataset_id)
    if info is None:
        raise DatasetError(f"dataset.id: no uploaded data set {dataset_id!r}")
    key = ("upload", dataset_id, info["sha256"])
    return RAW_CACHE.get(key, lambda: store.raw(dataset_id))


def _assemble(raw: RawSplits, split: float, normalize, seed: int, name: str) -> Dataset:
    keep = np.arange(len(raw.y_train))
    held = keep[:0]
    if split > 0:
        keep, held = stratified_split(raw.y_train, split, seed)
    x_fit = raw.x_train[keep]
    prep = fit_preprocessing(x_fit, normalize, raw.pixel_max)
    has_val, has_test = held.size > 0, raw.x_test is not None
    return Dataset(
        x_train=apply_preprocessing(x_fit, prep),
        y_train=np.array(raw.y_train[keep]),
        x_val=apply_preprocessing(raw.x_train[held], prep) if has_val else None,
        y_val=np.array(raw.y_train[held]) if has_val else None,
        x_test=apply_preprocessing(raw.x_test, prep) if has_test else None,
        y_test=np.array(raw.y_test) if has_test else None,
        input_shape=tuple(prep["input_shape"]),
        num_classes=raw.num_classes,
        classes=list(raw.classes) if raw.classes is not None else None,
        preprocessing=prep,
        name=name,
        label_column=raw.label_column,
    )

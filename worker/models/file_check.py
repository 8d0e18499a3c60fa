"""Validation of an uploaded model file (``nnlib.save``'s .npz) before anything is stored.

The file is untrusted: it is opened as a zip of ``.npy`` members with ``allow_pickle=False``, its
declared sizes are checked before anything is decompressed, the architecture's parameter count
is computed from the spec before any array is allocated, and every array must match the shape
the architecture gives it. Every refusal is a ModelFileError naming what was wrong.
"""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np

import nnlib
from nnlib.layers.conv import conv_output_size
from nnlib.layers.registry import layer_from_spec
from worker.datasets.preprocessing import NORMALIZE_METHODS
from worker.unicode_text import lone_surrogate_path, may_hold_surrogates

HEADER = "__gradq__"
MAX_HEADER_BYTES = 1 << 20
MAX_INPUT_VALUES = 10_000_000
MAX_DATASET_CHARS = 4096


class ModelFileError(ValueError):
    """A refused model file; the message names the part (file, header, architecture, weights)."""


def validate_model_file(content: bytes, max_bytes: int, max_parameters: int):
    """``(nnlib.Model, header metadata)`` from the bytes of an uploaded ``.npz``."""
    _check_archive(content, max_bytes)
    try:
        archive = np.load(io.BytesIO(content), allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ModelFileError(f"file: not a readable .npz ({error})") from None
    with archive:
        if HEADER not in archive.files:
            raise ModelFileError(f"file: no {HEADER!r} entry; not written by nnlib.save")
        header = _read_header(archive)
        spec, input_shape, dtype = _check_header(header)
        count = declared_parameters(spec, input_shape)
        if count > max_parameters:
            raise ModelFileError(
                f"architecture: {count} parameters; the budget is {max_parameters}"
            )
        try:
            model = nnlib.build_model(spec, input_shape, seed=0, dtype=dtype)
        except ValueError as error:
            raise ModelFileError(f"architecture: {error}") from None
        state = {}
        for name in archive.files:
            if name == HEADER:
                continue
            try:
                state[name] = archive[name]
            except ValueError as error:  # object arrays need pickle: refused
                raise ModelFileError(f"weights: array {name!r} cannot be read ({error})") from None
    for name, array in state.items():
        if array.dtype.kind not in "fiu" or not np.isfinite(array).all():
            raise ModelFileError(f"weights: array {name!r} must hold finite numbers")
    try:
        model.load_state_dict(state)
    except ValueError as error:
        raise ModelFileError(f"weights: {error}") from None
    metadata = header.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ModelFileError("header: 'metadata' must be an object")
    return model, _check_metadata(metadata, model)


def _check_archive(content: bytes, max_bytes: int) -> None:
    if not zipfile.is_zipfile(io.BytesIO(content)):
        raise ModelFileError("file: not an .npz archive (expected a zip of .npy arrays)")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        members = archive.infolist()
        if len(members) > 10_000:
            raise ModelFileError(f"file: {len(members)} arrays; at most 10000")
        for member in members:
            if not member.filename.endswith(".npy"):
                raise ModelFileError(f"file: member {member.filename!r} is not an .npy array")
        unpacked = sum(member.file_size for member in members)
        if unpacked > max_bytes:  # a zip bomb stops here, before anything is decompressed
            raise ModelFileError(f"file: {unpacked} bytes unpacked; the limit is {max_bytes}")


def _read_header(archive) -> dict:
    raw = archive[HEADER]
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_HEADER_BYTES:
        raise ModelFileError(f"header: {HEADER!r} must be at most 1 MB of UTF-8 JSON bytes")
    try:
        text = raw.tobytes().decode("utf-8")
        header = json.loads(text, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        raise ModelFileError(f"header: {HEADER!r} is not UTF-8 JSON") from None
    if may_hold_surrogates(text) and (where := lone_surrogate_path(header)) is not None:
        where = f"header: {where}" if where else "header"
        raise ModelFileError(f"{where}: a lone UTF-16 surrogate escape is not Unicode text")
    if not isinstance(header, dict):
        raise ModelFileError("header: expected a JSON object")
    if header.get("format") != "gradq-model" or header.get("version") != 1:
        raise ModelFileError(
            f"header: format {header.get('format')!r} version {header.get('version')!r};"
            " expected 'gradq-model' version 1"
        )
    return header


def _no_constant(name: str):
    """NaN and Infinity are not JSON (nnlib.save never writes them): refused while parsing."""
    raise ValueError(f"{name} is not JSON")


def _check_header(header: dict):
    spec, shape, dtype = header.get("spec"), header.get("input_shape"), header.get("dtype")
    if not isinstance(spec, dict):
        raise ModelFileError("header: 'spec' must be a model spec object {'layers': [...]}")
    ok = isinstance(shape, list) and 0 < len(shape) <= 4
    ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    if not ok or math.prod(shape) > MAX_INPUT_VALUES:
        raise ModelFileError(
            f"header: 'input_shape' must be 1-4 integers >= 1 (at most {MAX_INPUT_VALUES}"
            f" values), got {shape!r}"
        )
    if dtype not in ("float32", "float64"):
        raise ModelFileError(f"header: 'dtype' must be float32 or float64, got {dtype!r}")
    return spec, tuple(shape), np.dtype(dtype)


def declared_parameters(spec: dict, input_shape: tuple[int, ...]) -> int:
    """Parameters + buffers the spec would allocate, computed without allocating them.

    Stops counting at the first layer whose shape it cannot infer: ``build_model`` then names it.
    """
    layers = spec.get("layers")
    if not isinstance(layers, list):
        return 0
    shape, total = tuple(input_shape), 0
    try:
        for index, layer_spec in enumerate(layers):
            for layer in layer_from_spec(layer_spec, index):
                kind = getattr(layer, "type_name", "activation")
                bias = getattr(layer, "use_bias", False)
                if kind == "dense":
                    total += math.prod(shape) * layer.units + (layer.units if bias else 0)
                    shape = (layer.units,)
                elif kind == "conv2d":
                    c, h, w = shape
                    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
                    total += layer.filters * (c * kh * kw + (1 if bias else 0))
                    ho = conv_output_size(h, kh, sh, layer.padding)
                    wo = conv_output_size(w, kw, sw, layer.padding)
                    shape = (layer.filters, ho, wo)
                elif kind == "batchnorm":
                    total += 4 * shape[0]
                elif kind in ("maxpool2d", "avgpool2d", "flatten"):
                    shape = tuple(layer.output_shape_for(shape))
    except (ValueError, TypeError, IndexError):
        pass
    return total


def _check_metadata(metadata: dict, model) -> dict:
    """The header metadata gradq keeps (data set, label column, classes, preprocessing,
    metrics), checked."""
    outputs = math.prod(model.output_shape)
    count = 2 if outputs == 1 else outputs  # a single output is a binary classifier's logit
    classes = metadata.get("classes")
    if classes is not None:
        ok = isinstance(classes, list) and len(classes) == count
        if not ok or not all(isinstance(c, str) and len(c) <= 200 for c in classes):
            raise ModelFileError(
                f"header: metadata.classes must list {count} class names (strings), got"
                f" {str(classes)[:200]}"
            )
    num_classes = len(classes) if classes else metadata.get("num_classes")
    # predict, /v2 and ONNX size probabilities by the outputs: any other count would be a lie
    if num_classes is not None and (type(num_classes) is not int or num_classes != count):
        raise ModelFileError(
            f"header: metadata.num_classes must be {count} (the model's outputs) or null,"
            f" got {num_classes!r}"
        )
    metrics = metadata.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(_metric_value(v) for v in metrics.values()):
        raise ModelFileError("header: metadata.metrics must map names to finite numbers")
    label_column = metadata.get("label_column")
    if label_column is not None and not (isinstance(label_column, str) and len(label_column) < 201):
        raise ModelFileError(
            f"header: metadata.label_column must be a column name of at most 200 characters,"
            f" got {str(label_column)[:200]}"
        )
    return {
        "dataset": _check_dataset(metadata.get("dataset")),
        "label_column": label_column,
        "classes": classes,
        "num_classes": num_classes,
        "preprocessing": check_preprocessing(metadata.get("preprocessing"), model.input_shape),
        "metrics": metrics,
    }


def _check_dataset(dataset) -> dict | None:
    """The data set the file says it was trained on (``gradq train --save`` writes the spec's):
    shown with the model, never loaded, so any small JSON object will do."""
    if dataset is None:
        return None
    if not isinstance(dataset, dict) or len(json.dumps(dataset)) > MAX_DATASET_CHARS:
        raise ModelFileError(
            f"header: metadata.dataset must be an object of at most {MAX_DATASET_CHARS}"
            f" characters of JSON, got {str(dataset)[:100]}"
        )
    return dataset


def _metric_value(value) -> bool:
    """A metric is a finite number (not a bool) or null."""
    if value is None:
        return True
    return type(value) in (int, float) and math.isfinite(value)


def check_preprocessing(prep, input_shape: tuple[int, ...]) -> dict:
    """A preprocessing dict that ``apply_preprocessing`` can replay safely on this input shape."""
    if not prep:
        return {}
    if not isinstance(prep, dict) or prep.get("normalize") not in NORMALIZE_METHODS:
        raise ModelFileError(
            "header: metadata.preprocessing.normalize must be 'scale', 'standardize' or null"
        )
    if list(prep.get("input_shape") or []) != list(input_shape):
        raise ModelFileError(
            f"header: metadata.preprocessing.input_shape must be {list(input_shape)},"
            f" got {prep.get('input_shape')!r}"
        )
    out = {"normalize": prep["normalize"], "input_shape": list(input_shape)}
    if prep["normalize"] == "scale":
        divisor = prep.get("divisor")
        if not isinstance(divisor, int | float) or not math.isfinite(divisor) or divisor <= 0:
            raise ModelFileError("header: metadata.preprocessing.divisor must be a number > 0")
        out["divisor"] = float(divisor)
    elif prep["normalize"] == "standardize":
        size = math.prod(input_shape)
        for field in ("mean", "std"):
            values = prep.get(field)
            ok = isinstance(values, list) and len(values) == size
            ok = ok and all(isinstance(v, int | float) and math.isfinite(v) for v in values)
            if not ok or (field == "std" and min(values) <= 0):
                raise ModelFileError(
                    f"header: metadata.preprocessing.{field} must be {size} finite numbers"
                    + (" > 0" if field == "std" else "")
                )
            out[field] = [float(v) for v in values]
    return out

"""Prediction inputs and outputs: JSON -> a checked float32 batch -> predictions.

Inputs are raw values, like the training data before preprocessing; the model's stored
preprocessing is applied here, exactly as the worker applied it before training. Images are
turned into samples by ``api.images``.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from api.images import image_spatial_size, image_to_sample  # noqa: F401 (the UI's canvas)
from api.input_error import InputError
from api.json_body import BodyError, TooManyValues, loads
from worker.datasets.preprocessing import apply_preprocessing

FLOAT32_MAX = float(np.finfo(np.float32).max)
_LITERALS = re.compile(rb"true|false|null")


def sample_shapes(input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The shapes one sample may take: the model's own, without its size-1 axes (a (28, 28)
    image for a (1, 28, 28) model), and flattened."""
    shapes = [tuple(input_shape)]
    for shape in (tuple(d for d in input_shape if d != 1), (math.prod(input_shape),)):
        if shape and shape not in shapes:
            shapes.append(shape)
    return shapes


def batch_from_json(body: bytes, input_shape: tuple[int, ...], max_batch: int) -> np.ndarray:
    """A JSON body ``{"inputs": ...}`` -> a checked batch (``as_batch``); InputError if not.

    A body with more numbers than ``max_batch`` samples can hold is refused before parsing.
    """
    size = math.prod(input_shape)
    try:
        document = loads(body, max_values=max_batch * size + 8)
    except TooManyValues as error:
        raise InputError(f"{error} (at most {max_batch} samples of {size} values)") from None
    except BodyError as error:
        raise InputError(str(error)) from None
    if not isinstance(document, dict) or set(document) != {"inputs"}:
        raise InputError("body: expected a JSON object with exactly one field, 'inputs'")
    # NumPy reads [true, 0] as [1, 0] and [null, 0] as [nan, 0]: a JSON literal among the inputs
    # would be a wrong answer or a misleading error. The key "inputs" is the body's only string,
    # so a literal's name in the bytes is a literal (or text, refused as well).
    if _LITERALS.search(body) and (found := first_non_number(document["inputs"])):
        where, value = found  # named by its index, as a NaN is
        raise InputError(f"{where}: {value} is not a number")
    return as_batch(document["inputs"], input_shape, max_batch)


def first_non_number(raw: object, root: str = "inputs") -> tuple[str, str] | None:
    """(index path like ``inputs[0][3]``, JSON text) of the first null, boolean or string in
    ``raw`` (nested lists), depth-first in order; None if there is none."""
    stack: list[tuple[object, str]] = [(raw, root)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in reversed(list(enumerate(value))))
        elif value is None or isinstance(value, bool | str):
            return where, json.dumps(value)[:40]
    return None


def as_batch(raw: object, input_shape: tuple[int, ...], max_batch: int) -> np.ndarray:
    """Nested lists -> float32 (n, *input_shape): one sample or a batch of samples, each in
    one of ``sample_shapes``. InputError (a 422) names what was expected."""
    array = _numbers(raw)
    shapes = sample_shapes(input_shape)
    if array.shape in shapes:
        batch = array.reshape(1, *input_shape)
    elif array.ndim >= 1 and array.shape[1:] in shapes:
        batch = array.reshape(array.shape[0], *input_shape)
    else:
        # the model's own shape first, then the other accepted forms (flattened, channel-less)
        others = [list(s) for s in shapes if s != tuple(input_shape)]
        also = f" (or {' or '.join(map(str, others))})" if others else ""
        batch_shape = ", ".join(["n", *map(str, input_shape)])
        raise InputError(
            f"inputs: got shape {list(array.shape)}; expected one sample of shape"
            f" {list(input_shape)}{also}, or a batch of them [{batch_shape}]"
            f"{_label_column_hint(array.shape, input_shape)}"
        )
    if batch.shape[0] == 0:
        raise InputError("inputs: expected at least one sample")
    if batch.shape[0] > max_batch:
        raise InputError(f"inputs: {batch.shape[0]} samples; at most {max_batch} per request")
    _check_float32_range(array)
    return batch.astype(np.float32)


def _label_column_hint(shape: tuple[int, ...], input_shape: tuple[int, ...]) -> str:
    """For tabular rows one value too wide: they likely still hold the training label."""
    if len(input_shape) == 1 and len(shape) in (1, 2) and shape[-1] == input_shape[0] + 1:
        return (
            f"; rows of {shape[-1]} values have one too many: if they include the label "
            "column, remove it (gradq predict drops it by name from a CSV with a header when "
            "the model's data set recorded it)"
        )
    return ""


def _numbers(raw: object) -> np.ndarray:
    """A rectangular float64 array of JSON numbers (booleans and strings are not numbers)."""
    try:
        array = np.asarray(raw)
    except (ValueError, TypeError, RecursionError):
        raise InputError("inputs: expected a rectangular array of numbers") from None
    if array.dtype.kind not in "iufO":  # "O": integers beyond int64, or mixed objects
        raise InputError("inputs: expected a rectangular array of numbers, not text or booleans")
    try:
        return array.astype(np.float64)
    except OverflowError:
        raise InputError(f"inputs: values must fit float32 (|x| <= {FLOAT32_MAX:.4g})") from None
    except (ValueError, TypeError):
        raise InputError("inputs: expected a rectangular array of numbers") from None


def _check_float32_range(array: np.ndarray) -> None:
    """Refuse NaN, infinities and values float32 cannot hold, naming the first one's index."""
    bad = ~np.isfinite(array) | (np.abs(array) > FLOAT32_MAX)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        where = "inputs" + "".join(f"[{i}]" for i in index)
        value = float(array[index])
        shown = "NaN" if value != value else f"{value:g}".replace("inf", "Infinity")
        raise InputError(
            f"{where}: {shown} is not a finite number that fits float32 (|x| <= {FLOAT32_MAX:.4g})"
        )


def preprocess(batch: np.ndarray, preprocessing: dict | None) -> np.ndarray:
    """The training-time normalization (stored with the model) applied to a raw batch."""
    if not preprocessing:
        return batch
    return np.asarray(apply_preprocessing(batch, preprocessing), dtype=np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def format_outputs(outputs: np.ndarray, metadata: dict, ends_in_softmax: bool) -> dict:
    """Classifier outputs -> predictions + probabilities; anything else -> raw outputs."""
    outputs = np.asarray(outputs, dtype=np.float64).reshape(outputs.shape[0], -1)
    classes = metadata.get("classes")
    is_classifier = bool(metadata.get("num_classes") or classes)
    if not is_classifier:
        return {"outputs": outputs.tolist()}
    if outputs.shape[1] == 1:  # one logit: binary cross-entropy on logits
        positive = 1.0 / (1.0 + np.exp(-np.clip(outputs[:, 0], -500.0, 500.0)))
        probabilities = np.stack([1.0 - positive, positive], axis=1)
    else:
        probabilities = outputs if ends_in_softmax else softmax(outputs)
    predictions = probabilities.argmax(axis=1)
    body = {"predictions": predictions.tolist(), "probabilities": probabilities.tolist()}
    if classes:
        body["labels"] = [str(classes[i]) for i in predictions if i < len(classes)]
    return body


def ends_in_softmax(model_spec: dict | None) -> bool:
    layers = (model_spec or {}).get("layers") or [{}]
    last = layers[-1]
    return last.get("type") == "softmax" or last.get("activation") == "softmax"


# Batches up to this many input values run on the event loop (microseconds); larger in a thread
# (the route) or not on the fast path at all.
INLINE_VALUES = 65_536


def predict_batch(entry, batch: np.ndarray) -> dict:
    """A checked raw batch -> the response body: training preprocessing, model, outputs.

    InputError when the model's outputs are not finite (inputs within float32 can still
    overflow a layer): a prediction is never answered with NaN.
    """
    x = preprocess(batch, entry.metadata.get("preprocessing"))
    with np.errstate(over="ignore", invalid="ignore"):
        outputs = entry.model.predict(x)
    if not np.isfinite(outputs).all():
        sample = int(np.argwhere(~np.isfinite(outputs.reshape(len(outputs), -1)))[0][0])
        raise InputError(
            f"inputs[{sample}]: the model's outputs overflow for these values (not finite);"
            " are they in the training data's range?"
        )
    return format_outputs(outputs, entry.metadata, entry.extra["softmax"])

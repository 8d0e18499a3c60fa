"""Prediction inputs and outputs: JSON or image -> a checked batch -> predictions.

Inputs are raw values, like the training data before preprocessing; the model's stored
preprocessing is applied here, exactly as the worker applied it before training.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, UnidentifiedImageError

from worker.datasets.preprocessing import apply_preprocessing


class InputError(ValueError):
    """Refused prediction input; the message says what was expected."""


def as_batch(raw: object, input_shape: tuple[int, ...], max_batch: int) -> np.ndarray:
    """Nested lists -> float32 (n, *input_shape); one sample or a batch, shaped or flattened."""
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError):
        raise InputError("inputs: expected a rectangular array of numbers") from None
    size = math.prod(input_shape)
    shape = array.shape
    if shape == input_shape or shape == (size,):
        batch = array.reshape(1, *input_shape)
    elif len(shape) >= 1 and (shape[1:] == input_shape or shape[1:] == (size,)):
        batch = array.reshape(shape[0], *input_shape)
    else:
        raise InputError(
            f"inputs: got shape {list(shape)}; expected one sample of shape {list(input_shape)}"
            f" (or {size} values flattened), or a batch of them"
        )
    if batch.shape[0] == 0:
        raise InputError("inputs: expected at least one sample")
    if batch.shape[0] > max_batch:
        raise InputError(f"inputs: {batch.shape[0]} samples; at most {max_batch} per request")
    if not np.isfinite(batch).all():
        raise InputError("inputs: contains NaN or infinity; expected finite numbers")
    return batch.astype(np.float32)


def preprocess(batch: np.ndarray, preprocessing: dict | None) -> np.ndarray:
    """The training-time normalization (stored with the model) applied to a raw batch."""
    if not preprocessing:
        return batch
    return np.asarray(apply_preprocessing(batch, preprocessing), dtype=np.float32)


def image_spatial_size(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(height, width) an uploaded image is resized to, for a grey-scale model input."""
    if len(input_shape) == 3 and input_shape[0] == 1:
        return input_shape[1], input_shape[2]
    if len(input_shape) == 2:
        return input_shape
    if len(input_shape) == 1 and math.isqrt(input_shape[0]) ** 2 == input_shape[0]:
        side = math.isqrt(input_shape[0])
        return side, side
    raise InputError(
        f"file: this model's input shape {list(input_shape)} is not a grey-scale image"
    )


def image_to_sample(content: bytes, input_shape: tuple[int, ...], pixel_max: float) -> np.ndarray:
    """PNG/JPEG bytes -> one raw sample (1, *input_shape) in the training data's pixel range.

    Grey-scaled and resized; a photo of dark ink on light paper is inverted, because the built-in
    digit sets are light strokes on a dark background.
    """
    height, width = image_spatial_size(input_shape)
    try:
        image = Image.open(io.BytesIO(content))
        if image.format not in ("PNG", "JPEG"):
            raise InputError(f"file: expected a PNG or JPEG image, got {image.format}")
        grey = image.convert("L").resize((width, height), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError):
        raise InputError("file: not a readable PNG or JPEG image") from None
    pixels = np.asarray(grey, dtype=np.float32)
    if pixels.mean() > 127.5:
        pixels = 255.0 - pixels
    pixels *= pixel_max / 255.0
    return pixels.reshape(1, *input_shape)


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
        positive = 1.0 / (1.0 + np.exp(-outputs[:, 0]))
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
    """A checked raw batch -> the response body: training preprocessing, model, outputs."""
    x = preprocess(batch, entry.metadata.get("preprocessing"))
    return format_outputs(entry.model.predict(x), entry.metadata, entry.extra["softmax"])

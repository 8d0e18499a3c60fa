"""An uploaded image -> one raw prediction sample in the model's input shape and pixel range."""

from __future__ import annotations

import math

import numpy as np

from api.images.decode import decode_lightness
from api.images.digit import normalize_digit
from api.input_error import InputError


def image_spatial_size(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(height, width) of a grey-scale model input: (1, h, w), (h, w), or a square (h*w,)."""
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


DEFAULT_MAX_PIXELS = 16_777_216  # GRADQ_MAX_IMAGE_PIXELS' default (4096 x 4096)


def image_to_sample(
    content: bytes,
    input_shape: tuple[int, ...],
    pixel_max: float,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """PNG/JPEG bytes -> float32 (1, *input_shape): bright strokes on black, 0..``pixel_max``
    (the training data's raw range, e.g. 16 for the 8x8 digits, 255 for MNIST).

    Raises InputTooLarge over ``max_pixels`` pixels, InputError for anything unreadable.
    Blocking (decoding takes milliseconds to a second): call it from a thread.
    """
    height, width = image_spatial_size(input_shape)
    ink = normalize_digit(decode_lightness(content, max_pixels), height, width)
    return (ink * pixel_max).astype(np.float32).reshape(1, *input_shape)

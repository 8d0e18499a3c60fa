"""Image bytes -> lightness: size checked from the header, any Pillow mode, alpha, EXIF.

Lightness is a float64 (height, width) array in [0, 1] where 1 is white paper: transparent
pixels are composited over white, each mode is scaled by its own full range (16-bit grey is
0..65535, not clipped to 255), and the EXIF orientation is applied. Large pictures are reduced
to at most ``WORK_SIDE`` pixels a side before any float maths, so memory stays small.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image, ImageOps

from api.input_error import InputError, InputTooLarge

ACCEPTED_FORMATS = ("PNG", "JPEG")
WORK_SIDE = 512  # a digit needs far fewer pixels; bigger inputs only cost time and memory
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's own convert("L")
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
# modes Pillow can only bring to grey through RGB (or RGBA when they carry alpha)
AS_RGB = ("CMYK", "YCbCr", "LAB", "HSV", "RGBX")
AS_RGBA = ("PA", "RGBa", "La")


def decode_lightness(content: bytes, max_pixels: int) -> np.ndarray:
    """PNG/JPEG bytes -> lightness (h, w) in [0, 1], upright, at most ``WORK_SIDE`` a side.

    Raises InputTooLarge when the header declares more than ``max_pixels`` pixels (nothing is
    decoded), InputError when the bytes are not a readable PNG or JPEG.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError:
        raise InputTooLarge(f"file: image has more than {max_pixels} pixels (the limit)") from None
    except Exception:  # Pillow parses client bytes: any failure means "not a readable image"
        raise InputError("file: not a readable PNG or JPEG image") from None
    width, height = image.size
    if width * height > max_pixels:
        raise InputTooLarge(
            f"file: image is {width}x{height} = {width * height} pixels;"
            f" the limit is {max_pixels} pixels"
        )
    if width < 1 or height < 1:
        raise InputError("file: image has no pixels")
    try:
        if image.format == "JPEG":  # decode at 1/2..1/8 scale straight from the DCT
            image.draft(image.mode, (WORK_SIDE, WORK_SIDE))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return lightness_of(image)
    except InputError:
        raise
    except Exception:  # truncated data, broken EXIF, corrupt chunks: the client's bytes
        raise InputError("file: the image data is damaged or truncated") from None


def lightness_of(image: Image.Image) -> np.ndarray:
    """Any Pillow image -> lightness (h, w) float64 in [0, 1], upright by its EXIF orientation;
    alpha composited over white."""
    image, full_scale = _canonical(image)
    factor = math.ceil(max(image.size) / WORK_SIDE)
    if factor > 1:
        image = image.reduce(factor)  # box average: thin strokes fade, contrast stretch restores
    # convert() and reduce() keep info["exif"], so turning the small image is enough
    image = ImageOps.exif_transpose(image)
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode in ("I", "F"):
        return _scaled(pixels, full_scale)
    pixels = pixels / 255.0
    if image.mode == "L":
        return pixels
    has_alpha = image.mode in ("LA", "RGBA")
    colour = pixels[..., :-1] if has_alpha else pixels
    grey = colour[..., 0] if colour.shape[-1] == 1 else colour @ LUMA
    if not has_alpha:
        return grey
    alpha = pixels[..., -1]
    over_white = alpha * grey + (1.0 - alpha)
    if np.ptp(over_white) < 0.05 and np.ptp(alpha) >= 0.05:
        # light ink drawn only through alpha (white strokes on a transparent sheet): on white it
        # vanishes, so show the sheet over black instead
        return alpha * grey
    return over_white


def _canonical(image: Image.Image) -> tuple[Image.Image, float | None]:
    """One of L, LA, RGB, RGBA, I, F; plus the full-scale value of an integer mode, if known."""
    mode = image.mode
    if mode in SIXTEEN_BIT:
        return image.convert("I"), 65535.0
    if mode in ("L", "LA", "RGB", "RGBA", "I", "F"):
        return image, None
    if mode == "1":
        return image.convert("L"), None
    if mode == "P":
        has_alpha = "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB"), None
    if mode in AS_RGBA:
        return image.convert("RGBA"), None
    if mode in AS_RGB:
        return image.convert("RGB"), None
    raise InputError(f"file: image mode {mode} is not supported")


def _scaled(values: np.ndarray, full_scale: float | None) -> np.ndarray:
    """32-bit integer or float pixels -> [0, 1] by the type's range (or the values' own)."""
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if full_scale is None and low >= 0.0:
        for candidate in (1.0, 255.0, 65535.0):
            if high <= candidate:
                full_scale = candidate
                break
    if full_scale is not None:
        return np.clip(values / full_scale, 0.0, 1.0)
    span = high - low
    return (values - low) / span if span > 0 else np.ones_like(values)

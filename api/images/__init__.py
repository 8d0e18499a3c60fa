"""Prediction images: bytes -> checked, decoded picture -> one model-sized digit sample.

``decode`` turns a PNG/JPEG into a lightness array (any Pillow mode, alpha, EXIF orientation);
``digit`` turns a lightness array into a centred, MNIST-style digit; ``sample`` joins the two
for ``POST /v1/models/{id}/predict``. The dashboard's digit canvas reuses ``normalize_digit``.
"""

from api.images.decode import decode_lightness, lightness_of
from api.images.digit import normalize_digit
from api.images.sample import image_spatial_size, image_to_sample

__all__ = [
    "decode_lightness",
    "image_spatial_size",
    "image_to_sample",
    "lightness_of",
    "normalize_digit",
]

"""Pictures of scikit-learn's 8x8 digits, drawn the ways clients send them (test helper).

``picture(label)`` is the issue's reference: the first digit ``label`` of the data set drawn
64x64 as dark ink on white. The other helpers change one thing at a time: paper and ink
colours, size, Pillow mode, EXIF orientation, alpha-only ink.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image

WHITE, BLACK = (255, 255, 255), (0, 0, 0)
# what Pillow's exif_transpose does for each orientation; stored = the inverse of it
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # viewed after ROTATE_270
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # viewed after ROTATE_90
}


@functools.cache
def reference_digit(label: int) -> np.ndarray:
    """The first 8x8 digit ``label`` (0..16 ink) of scikit-learn's digits (index == label)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    assert digits.target[label] == label
    return digits.images[label]


def picture(label: int, size: int = 64, paper=WHITE, ink=BLACK) -> Image.Image:
    """RGB ``size`` x ``size`` picture of the reference digit: ink blended over the paper."""
    amount = reference_digit(label)[..., None] / 16.0
    rgb = np.asarray(paper, float) * (1 - amount) + np.asarray(ink, float) * amount
    small = Image.fromarray(np.round(rgb).astype(np.uint8), "RGB")
    return small.resize((size, size), Image.Resampling.NEAREST)


def in_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` (RGB, ink on white) in Pillow ``mode``, keeping what it shows."""
    grey = image.convert("L")
    if mode == "1":
        return grey.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)
    if mode == "LA":
        return Image.merge("LA", [grey, Image.new("L", grey.size, 255)])
    if mode == "P":  # palette with a transparent paper entry
        paletted = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        paletted.info["transparency"] = paletted.getpixel((0, 0))
        return paletted
    if mode == "RGBA":  # the hard case: ink only in the alpha channel
        return alpha_only(image)
    if mode in ("I;16", "I"):
        # 16-bit grey: values x257, so 255 -> 65535 (uint16 -> I;16, int32 -> I)
        return Image.fromarray(
            np.asarray(grey).astype(np.uint16 if mode == "I;16" else np.int32) * 257
        )
    if mode == "F":
        return Image.fromarray(np.asarray(grey, np.float32) / 255.0)
    return image.convert(mode)


def alpha_only(image: Image.Image) -> Image.Image:
    """RGBA black everywhere, the ink only in the alpha channel (paper fully transparent)."""
    ink = 255 - np.asarray(image.convert("L"))
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = ink
    return Image.fromarray(rgba, "RGBA")


def encoded(image: Image.Image, image_format: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


def with_orientation(image: Image.Image, orientation: int, image_format="JPEG") -> bytes:
    """``image`` stored so that a viewer honouring EXIF ``orientation`` shows it upright."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image.transpose(STORED_AS[orientation]) if orientation in STORED_AS else image
    return encoded(stored, image_format, exif=exif)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring ``width`` x ``height`` grey pixels whose data is one empty row: what a
    decompression bomb looks like before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1)))
        + chunk(b"IEND", b"")
    )

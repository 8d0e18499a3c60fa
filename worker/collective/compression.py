"""16-bit encodings of the vectors the tcp transport sends (job spec ``compression``)."""

from __future__ import annotations

import numpy as np


class Codec:
    """How vectors of ``dtype`` travel: as they are, or compressed to 16 bits.

    ``fp16``: IEEE half (11-bit significand, range +-65504; numpy's cast costs ~2.6 ms per 235k
    floats here). ``bf16``: the upper half of a float32, rounded to nearest even (8-bit
    significand, float32's range; two integer passes, ~1 ms for the same 235k floats). Either way
    a shard rounds its own part as its peers receive it, so every replica adds the same values.
    """

    def __init__(self, compression: str | None, dtype: np.dtype):
        if compression == "bf16" and dtype != np.float32:
            compression = "fp16"  # bf16 is float32's upper half: other dtypes go as IEEE half
        self.compression = compression
        self.wire = {None: dtype, "fp16": np.float16, "bf16": np.uint16}[compression]

    def encode(self, array: np.ndarray) -> np.ndarray:
        if self.compression == "bf16":
            bits = array.view(np.uint32)
            return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        return array.astype(self.wire, copy=False)

    def decode(self, wire: np.ndarray) -> np.ndarray:
        if self.compression == "bf16":
            return (wire.astype(np.uint32) << 16).view(np.float32)
        return wire.astype(np.float32 if self.compression else wire.dtype, copy=False)

    def round(self, array: np.ndarray) -> np.ndarray:
        """``array`` replaced in place by its decoded encoding; -> the encoding."""
        encoded = self.encode(array)
        if encoded is not array:
            np.copyto(array, self.decode(encoded))
        return encoded

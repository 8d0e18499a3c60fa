"""How the tcp transport encodes the vectors it sends (job spec ``compression``): as they are,
in 16 bits (lossy), or in lossless zstd frames (``worker.collective.lossless``)."""

from __future__ import annotations

import numpy as np

from worker.collective.allreduce import as_bytes
from worker.collective.lossless import FrameReceiver, compressed_frame


class Codec:
    """How vectors of ``dtype`` travel: as they are, compressed to 16 bits, or in zstd frames.

    ``fp16``: IEEE half (11-bit significand, range +-65504; numpy's cast costs ~2.6 ms per 235k
    floats here). ``bf16``: the upper half of a float32, rounded to nearest even (8-bit
    significand, float32's range; two integer passes, ~1 ms for the same 235k floats). Either way
    a shard rounds its own part as its peers receive it, so every replica adds the same values.
    ``zstd``: the values themselves (no rounding), each message one variable-sized frame.
    Senders pass ``framed(encoding)`` to the socket; receivers fill ``receiver(slot)``.
    """

    def __init__(self, compression: str | None, dtype: np.dtype):
        if compression == "bf16" and dtype != np.float32:
            compression = "fp16"  # bf16 is float32's upper half: other dtypes go as IEEE half
        self.compression = compression
        self.wire = {None: dtype, "zstd": dtype, "fp16": np.float16, "bf16": np.uint16}[compression]
        self.lossless = compression in (None, "zstd")

    def framed(self, wire: np.ndarray) -> memoryview:
        """The bytes that carry ``wire`` (an encoding) to a peer."""
        return compressed_frame(wire) if self.compression == "zstd" else as_bytes(wire)

    def receiver(self, slot: np.ndarray) -> memoryview | FrameReceiver:
        """What the socket fills to put a peer's encoding into ``slot`` (a wire-dtype array)."""
        return FrameReceiver(slot) if self.compression == "zstd" else as_bytes(slot)

    def encode(self, array: np.ndarray) -> np.ndarray:
        if self.compression == "bf16":
            bits = array.view(np.uint32)
            return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        return array.astype(self.wire, copy=False)

    def decode(self, wire: np.ndarray) -> np.ndarray:
        if self.compression == "bf16":
            return (wire.astype(np.uint32) << 16).view(np.float32)
        return wire.astype(wire.dtype if self.lossless else np.float32, copy=False)

    def round(self, array: np.ndarray) -> np.ndarray:
        """``array`` replaced in place by its decoded encoding; -> the encoding."""
        encoded = self.encode(array)
        if encoded is not array:
            np.copyto(array, self.decode(encoded))
        return encoded

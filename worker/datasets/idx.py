"""The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.

Layout: two zero bytes, a type code, the number of dimensions, one big-endian uint32 per dimension,
then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from worker.datasets.base import DatasetError

# type code -> big-endian element type
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """The array in ``data`` (native byte order, read-only); ``source`` names it in errors."""
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{source}: corrupt gzip stream ({exc})") from None
    if len(data) < 4:
        raise DatasetError(f"{source}: truncated header ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise DatasetError(f"{source}: bad magic number 0x{data[:4].hex()} (not an IDX file)")
    if code not in IDX_DTYPES:
        raise DatasetError(f"{source}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise DatasetError(f"{source}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DatasetError(f"{source}: truncated header ({len(data)} of {header_len} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header_len
    if got != expected:
        problem = "truncated" if got < expected else "trailing bytes"
        raise DatasetError(
            f"{source}: {problem}: shape {dims} needs {expected} data bytes, found {got}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    array.flags.writeable = False
    return array


def read_idx(path: Path) -> np.ndarray:
    """Parse the IDX file at ``path`` (``.gz`` or raw; detected from the content)."""
    return parse_idx(Path(path).read_bytes(), source=str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The raw IDX bytes of ``array`` (used by tests and to cache data sets)."""
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    dtype = np.dtype(array.dtype).newbyteorder("=")
    if dtype not in codes:
        raise DatasetError(f"IDX cannot store dtype {array.dtype}")
    header = struct.pack(">HBB", 0, codes[dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[codes[dtype]]).tobytes()

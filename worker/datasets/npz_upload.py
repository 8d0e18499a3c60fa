""".npz uploads read from the archive's headers first, then streamed into their stored form.

Before a byte of array data is decompressed, every member's ``.npy`` header gives its dtype and
shape, so the expanded size (``shape * itemsize``) and the stored size are checked against the
limits: a 465 KB archive of zeros that claims 480 MB is refused for what it claims. Features are
then read in chunks of samples straight into one array of their stored dtype and layout (uint8
or float32, channels-first), so accepting an upload holds the stored arrays plus a chunk, not
several whole copies. Nothing is ever unpickled: object dtypes are refused from the header.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

import numpy as np

from worker.datasets.base import DatasetError

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
CHUNK_BYTES = 2 * 1024 * 1024  # raw bytes decompressed per step while streaming features
EOCD_BYTES = 22  # the zip end-of-central-directory record without its comment
MAX_DIRECTORY_BYTES = 64 * 1024  # 4 entries take a few hundred bytes
# what zipfile and numpy raise on damaged, encrypted or exotic archives (RuntimeError: encrypted,
# NotImplementedError: compression method, zlib.error: corrupt deflate stream)
ARCHIVE_ERRORS = (
    ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile, zlib.error, RuntimeError,
    NotImplementedError,
)  # fmt: skip


class DatasetTooLarge(DatasetError):
    """An upload over a size limit (the API answers 413); the message gives the numbers."""


class Member(NamedTuple):
    """One array of the archive as its header describes it."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class NpzArrays(NamedTuple):
    arrays: dict[str, np.ndarray]  # x uint8 or float32 channels-first; y as in the file
    is_image: bool  # x_train has 3 or 4 dimensions of integers


def read_npz(
    file: BinaryIO, max_bytes: int, on_planned_bytes: Callable[[int], None] | None = None
) -> NpzArrays:
    """The archive's arrays: x as uint8 or float32 (channels-first), y as stored.

    ``on_planned_bytes(n)`` is called with the stored size the headers imply before any array
    data is read (the caller refuses it, e.g. over a storage quota). DatasetError names the array.
    """
    _check_directory_size(file)
    try:
        archive = zipfile.ZipFile(file)
    except ARCHIVE_ERRORS as exc:
        raise DatasetError(f"file: not a readable .npz archive ({exc})") from None
    with archive:
        members = {name: _header(archive, info) for name, info in _members(archive).items()}
        expanded = sum(m.nbytes for m in members.values())
        if expanded > max_bytes:
            raise DatasetTooLarge(
                f"file: arrays expand to {expanded} bytes, over the limit of "
                f"{max_bytes} bytes (GRADQ_MAX_DATASET_BYTES)"
            )
        plans = {name: _plan_features(name, m) for name, m in members.items() if name[0] == "x"}
        if "x_test" in plans and members["x_test"].shape[1:] != members["x_train"].shape[1:]:
            raise DatasetError(
                f"x_test: samples have shape {members['x_test'].shape[1:]}, but "
                f"x_train's have {members['x_train'].shape[1:]}"
            )
        byte_features = _byte_features(archive, members, plans)
        planned = sum(  # y: int64 labels or float32 targets (a forced task may change that)
            math.prod(m.shape) * (1 if byte_features else 4)
            if name[0] == "x"
            else math.prod(m.shape) * (4 if m.dtype.kind == "f" else 8)
            for name, m in members.items()
        )
        if on_planned_bytes is not None:
            on_planned_bytes(planned)
        out_dtype = np.dtype(np.uint8 if byte_features else np.float32)
        arrays = {
            name: _read_features(archive, member, plans[name], out_dtype, name)
            if name in plans
            else _read_whole(archive, member, name)
            for name, member in members.items()
        }
    x_train = members["x_train"]
    return NpzArrays(arrays, len(x_train.shape) >= 3 and x_train.dtype.kind in "biu")


def _check_directory_size(file: BinaryIO) -> None:
    """Refuse a central directory too big for 4 arrays before zipfile parses it: it makes one
    object per entry, so millions of tiny entries would cost gigabytes (EOCD: APPNOTE 4.3.16)."""
    size = file.seek(0, io.SEEK_END)
    tail_bytes = min(size, EOCD_BYTES + 65_535)  # the record ends with a comment of <= 64 KiB
    file.seek(size - tail_bytes)
    tail = file.read(tail_bytes)
    file.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + EOCD_BYTES:
        return  # not a zip archive: zipfile says so
    directory_bytes = int.from_bytes(tail[at + 12 : at + 16], "little")
    if directory_bytes > MAX_DIRECTORY_BYTES:
        raise DatasetError(
            f"file: the archive's directory takes {directory_bytes} bytes; an .npz of at most "
            f"{len(ARRAY_NAMES)} arrays needs under {MAX_DIRECTORY_BYTES}"
        )


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    members = {}
    for info in archive.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if name not in ARRAY_NAMES:
            raise DatasetError(
                f"{name}: unexpected array; an .npz may hold only {', '.join(ARRAY_NAMES)}"
            )
        members[name] = info
    for required in ("x_train", "y_train"):
        if required not in members:
            raise DatasetError(f"{required}: missing from the .npz archive")
    if ("x_test" in members) != ("y_test" in members):
        present, absent = ("x_test", "y_test") if "x_test" in members else ("y_test", "x_test")
        raise DatasetError(f"{absent}: missing while {present} is present (send both or neither)")
    return members


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    name = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                version, np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read(f)
            header_bytes = f.tell()
    except ARCHIVE_ERRORS as exc:
        raise DatasetError(f"{name}: not a readable .npy array ({exc})") from None
    if any(d < 0 for d in shape):
        raise DatasetError(f"{name}: negative dimension in shape {list(shape)}")
    if dtype.hasobject:
        raise DatasetError(f"{name}: object arrays (pickled data) are not accepted; store numbers")
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise DatasetError(f"{name}: dtype {dtype} is not numeric")
    member = Member(info, tuple(int(d) for d in shape), dtype, bool(fortran_order))
    if info.file_size != header_bytes + member.nbytes:
        raise DatasetError(
            f"{name}: header says shape {list(shape)} of {dtype} ({member.nbytes} bytes) but "
            f"the archive holds {info.file_size - header_bytes} bytes of data"
        )
    return member


class _Plan(NamedTuple):
    out_shape: tuple[int, ...]
    channels_last: bool


def _plan_features(name: str, member: Member) -> _Plan:
    """Stored shape of features: (n, d), (n, 1, h, w) from (n, h, w), (n, c, h, w) from NHWC."""
    shape = member.shape
    if len(shape) < 2 or len(shape) > 4:
        raise DatasetError(f"{name}: expected 2 to 4 dimensions (samples first), got shape {shape}")
    if shape[0] == 0:
        raise DatasetError(f"{name}: has no samples")
    if 0 in shape[1:]:
        raise DatasetError(f"{name}: shape {list(shape)} has an empty dimension")
    if len(shape) == 3:
        return _Plan((shape[0], 1, *shape[1:]), False)
    if len(shape) == 4 and shape[1] > 4:
        if shape[3] > 4:
            raise DatasetError(
                f"{name}: images must be (n, c, h, w) or (n, h, w, c) with at "
                f"most 4 channels, got shape {shape}"
            )
        return _Plan((shape[0], shape[3], shape[1], shape[2]), True)
    return _Plan(shape, False)


def _byte_features(archive, members: dict[str, Member], plans: dict) -> bool:
    """True when every feature array is integral with values in 0..255 (stored as uint8).

    uint8 and bool say so from the header; other integer types need one pass over their values.
    """
    for name in plans:
        member = members[name]
        if member.dtype.kind == "f":
            return False
    for name in plans:
        member = members[name]
        if member.dtype.kind == "b" or member.dtype == np.uint8:
            continue
        for _, chunk in _chunks(archive, member, name):
            if chunk.size and (chunk.min() < 0 or chunk.max() > 255):
                return False
    return True


def _chunks(archive, member: Member, name: str):
    """Yield (first sample, samples as an array of the file's dtype) in C-order chunks."""
    per_sample = member.nbytes // member.shape[0] if member.shape[0] else 0
    step = max(1, CHUNK_BYTES // max(per_sample, 1))
    try:
        with archive.open(member.info) as f:
            f.read(member.info.file_size - member.nbytes)  # the header, read by _header
            for first in range(0, member.shape[0], step):
                count = min(step, member.shape[0] - first)
                raw = f.read(count * per_sample)
                if len(raw) != count * per_sample:
                    raise DatasetError(f"{name}: the archive ends inside the array data")
                yield first, np.frombuffer(raw, member.dtype).reshape(count, *member.shape[1:])
            f.read()  # reaching the end checks the member's CRC
    except DatasetError:
        raise
    except ARCHIVE_ERRORS as exc:
        raise DatasetError(f"{name}: unreadable array data ({exc})") from None


def _read_features(archive, member: Member, plan: _Plan, out_dtype, name: str) -> np.ndarray:
    if member.fortran_order:  # rare; chunks of samples are not contiguous in the file
        x = _read_whole(archive, member, name)
        chunks = [(0, x)]
    else:
        chunks = _chunks(archive, member, name)
    out = np.empty(plan.out_shape, dtype=out_dtype)
    for first, chunk in chunks:
        if chunk.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1))
            if bad.size:
                raise DatasetError(
                    f"{name}: samples contain NaN or infinity (first at index {first + bad[0]})"
                )
        if plan.channels_last:
            chunk = chunk.transpose(0, 3, 1, 2)
        target = out[first : first + len(chunk)]
        with np.errstate(over="ignore"):  # overflow is reported just below
            target[...] = chunk.reshape(target.shape)
        if out_dtype.kind == "f" and not np.isfinite(target).all():
            raise DatasetError(f"{name}: values too large for float32")
    return out


def _read_whole(archive, member: Member, name: str) -> np.ndarray:
    try:
        with archive.open(member.info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except ARCHIVE_ERRORS as exc:
        raise DatasetError(f"{name}: unreadable array ({exc})") from None

"""``file:///path``: artifacts as files under one directory (local disk or a shared mount).

Writes go to a temporary file beside the target, are flushed to disk (``fsync``) and renamed over
it, and the directory is flushed too, so a reader sees the whole object or none and a published
record never outlives its bytes: the record goes to Redis right after ``write`` returns, and
retention deletes the previous checkpoint right after that, so an object still only in the page
cache at a power loss would leave a job with no checkpoint at all. A crash leaves a ``.part-*``
file that ``list`` reports like any object, so the collector removes it after the grace period.
Deleting an object removes its directory too once that is empty (a job's checkpoint folder after
its last checkpoint goes): only ``rmdir``, which refuses a directory a concurrent write put a file
in, and a write that finds its directory gone between ``mkdir`` and ``open`` makes it again.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from worker.storage.base import (
    CHUNK_BYTES,
    ArtifactMissingError,
    ObjectStat,
    check_key,
    fill_from_stream,
)

PARTIAL_MARK = ".part-"


class FileBackend:
    """Objects as files: key ``a/b.npz`` is ``<root>/a/b.npz``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.url = f"file://{self.root}"

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def write(self, key: str, parts: Iterable[memoryview | bytes]) -> None:
        target = self.path(key)
        partial = target.with_name(f"{target.name}{PARTIAL_MARK}{secrets.token_hex(4)}")
        try:
            with _create(partial) as out:
                for part in parts:
                    out.write(part)  # a memoryview goes to the kernel as is: no join, no copy
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)

    def read(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        return _chunks(self._open(key), chunk_bytes)

    def read_into(self, key: str, out: memoryview, chunk_bytes: int = CHUNK_BYTES) -> Iterator[int]:
        handle = self._open(key)  # opened now: a missing object fails before the first chunk
        return fill_from_file(handle, out, chunk_bytes, key, self.url)

    def _open(self, key: str):
        try:
            return open(self.path(key), "rb", buffering=0)
        except FileNotFoundError:
            raise ArtifactMissingError(f"artifact {key!r} is missing from {self.url}") from None

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        if path.parent != self.root:
            try:
                path.parent.rmdir()
            except OSError:  # not empty (other objects, or a write in progress), or gone already
                pass

    def list(self, prefix: str = "") -> Iterator[ObjectStat]:
        for directory, _, files in os.walk(self.root):
            for name in files:
                path = Path(directory) / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # deleted while we walked
                    continue
                yield ObjectStat(key, stat.st_size, stat.st_mtime)


def _create(path: Path, tries: int = 5):
    """Open ``path`` for writing, making its directory; again if a delete removed that directory
    (found empty) between our ``mkdir`` and ``open``. Once our file is in it, no ``rmdir`` can."""
    for _ in range(tries - 1):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return open(path, "wb")
        except FileNotFoundError:
            continue
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "wb")


def _chunks(handle, chunk_bytes: int) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk


def fill_from_file(
    handle, out: memoryview, chunk_bytes: int, key: str, where: str
) -> Iterator[int]:
    """``read_into`` for an open file (closed at the end): see ``Backend.read_into``."""
    size = os.fstat(handle.fileno()).st_size
    return fill_from_stream(handle, size, out, chunk_bytes, key, where)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power loss (the entry lives in the directory)."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)

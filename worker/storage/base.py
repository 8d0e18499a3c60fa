"""What every artifact backend offers, and the errors a read can end in.

A backend stores opaque objects under keys like ``models/mdl_0123.npz``: ``write`` makes a whole
object appear at once (never half of one), ``read`` streams it back in chunks, ``list`` walks the
objects under a prefix with their size and age (the collector's view), ``read_into`` fills a
preallocated buffer straight from the file or socket (no intermediate chunk copies). Integrity
(size, SHA-256) is checked one level up, in ``ArtifactStore``, so both backends get the same checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

# Streamed reads and multipart parts move this many bytes at a time: large enough that per-call
# overhead vanishes, small enough that a read never holds a second copy of a big object.
CHUNK_BYTES = 8 * 1024 * 1024


class ArtifactError(RuntimeError):
    """An artifact could not be read or written; the message names the object."""


class ArtifactMissingError(ArtifactError):
    """The object a record points at is not in the store."""


class ArtifactCorruptError(ArtifactError):
    """The object's bytes do not match its record (size or SHA-256)."""


@dataclass(frozen=True)
class ObjectStat:
    """One stored object: its key, its size in bytes and when it was written (Unix seconds)."""

    key: str
    size: int
    modified: float


class Backend(Protocol):
    """Where artifact bytes live (a directory, or an S3 bucket and prefix)."""

    url: str

    def write(self, key: str, parts: Iterable[memoryview | bytes]) -> None:
        """Store the concatenation of ``parts`` under ``key``; visible only once complete."""
        ...

    def read(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes | memoryview]:
        """The object's bytes in chunks; ``ArtifactMissingError`` if there is no such key."""
        ...

    def read_into(self, key: str, out: memoryview, chunk_bytes: int = CHUNK_BYTES) -> Iterator[int]:
        """Fill ``out`` from the start, yielding the bytes filled so far after each chunk.

        Ends early if the object is shorter; ``ArtifactMissingError`` if there is no such key,
        ``ArtifactCorruptError`` if the object is longer than ``out``. Both name the object.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is already gone."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectStat]:
        """Every object whose key starts with ``prefix`` (including stale partial uploads)."""
        ...


def too_long(key: str, where: str, size: int) -> ArtifactCorruptError:
    """The error for an object with more bytes than its record gives."""
    return ArtifactCorruptError(
        f"artifact {key!r} in {where} is corrupt: it has more than the {size} bytes "
        "its record gives"
    )


def fill_from_stream(
    stream, announced: int, out: memoryview, chunk_bytes: int, key: str, where: str
) -> Iterator[int]:
    """``Backend.read_into`` for a binary ``stream`` (``readinto``/``read``; closed at the end)
    that says it holds ``announced`` bytes: fills ``out`` in chunks of at most ``chunk_bytes``,
    yielding the bytes filled so far, and never reads past ``out`` (``too_long`` instead)."""
    with stream:
        if announced > len(out):
            raise too_long(key, where, len(out))
        filled = 0
        while filled < len(out):
            count = stream.readinto(out[filled : filled + chunk_bytes])
            if not count:
                return  # shorter than the record: the caller's size check names it
            filled += count
            yield filled
        if stream.read(1):  # grew while we read, or more than announced
            raise too_long(key, where, len(out))


def check_key(key: str) -> str:
    """Keys are relative, ``/``-separated names without ``..``: ValueError otherwise."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"artifact key {key!r} must be a relative path without '..' or '//'")
    return key

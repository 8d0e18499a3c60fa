"""``file:///path``: artifacts as files under one directory (local disk or a shared mount).

Writes go to a temporary file beside the target and are renamed over it, so a reader sees the
whole object or none; a crash leaves a ``.part-*`` file that ``list`` reports like any object, so
the collector removes it after the grace period.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from worker.storage.base import CHUNK_BYTES, ArtifactMissingError, ObjectStat, check_key

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
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}{PARTIAL_MARK}{secrets.token_hex(4)}")
        try:
            # no fsync: a host crash can leave a short file, and every read checks size and hash
            with open(partial, "wb") as out:
                for part in parts:
                    out.write(part)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def read(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        try:
            handle = open(self.path(key), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise ArtifactMissingError(f"artifact {key!r} is missing from {self.url}") from None
        return _chunks(handle, chunk_bytes)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

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


def _chunks(handle, chunk_bytes: int) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk

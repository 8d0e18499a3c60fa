"""A per-host cache of downloaded artifacts, keyed by SHA-256 and bounded in bytes.

N shards of a job on one host ask for the same data set at once: an exclusive ``flock`` per hash
makes the first one download it while the others wait and then read the local copy. Copies are
re-hashed on every read (a damaged copy is dropped and downloaded again, never used), written
through a temporary name (no reader sees half a file), and the least recently used copies go
when the total passes ``max_bytes``.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from worker.storage.artifacts import fill_checked
from worker.storage.base import ArtifactCorruptError
from worker.storage.filesystem import fill_from_file

READ_CHUNK = 8 * 1024 * 1024


class HostCache:
    """Local copies of artifacts under ``root`` (files named by SHA-256)."""

    def __init__(self, root: Path, max_bytes: int):
        self.root, self.max_bytes = Path(root), int(max_bytes)

    def fetch(self, record: dict, download: Callable[[memoryview], None]) -> bytearray:
        """The object's bytes: the local copy if it is intact, else ``download(out)`` (which
        fills and checks ``out``) once per host, keeping a copy when it fits the budget."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / record["sha256"]
        with open(self.root / f"{record['sha256']}.lock", "wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            cached = self._read_intact(path, record)
            if cached is not None:
                return cached
            out = bytearray(record["size"])
            download(memoryview(out))
            if record["size"] <= self.max_bytes:
                self._store(path, out)
            return out

    def _read_intact(self, path: Path, record: dict) -> bytearray | None:
        where = f"host cache {self.root}"
        try:
            if path.stat().st_size != record["size"]:
                path.unlink()
                return None
            handle = open(path, "rb", buffering=0)  # noqa: SIM115 - fill_from_file closes it
        except FileNotFoundError:
            return None
        out = bytearray(record["size"])
        view = memoryview(out)
        try:  # read and hash overlap, as for a download
            fill_checked(
                record, view, fill_from_file(handle, view, READ_CHUNK, record["key"], where), where
            )
        except ArtifactCorruptError:
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: evicted last
        return out

    def _store(self, path: Path, data: bytearray) -> None:
        self._evict(keep_free=len(data))
        partial = path.with_name(f"{path.name}.part-{secrets.token_hex(4)}")
        try:
            with open(partial, "wb") as out:
                out.write(data)
            os.replace(partial, path)
        except OSError:  # a full disk only costs the next reader a download
            partial.unlink(missing_ok=True)

    def _evict(self, keep_free: int) -> None:
        copies = []
        for entry in os.scandir(self.root):
            if entry.is_file() and len(entry.name) == 64:  # sha256 names only
                stat = entry.stat()
                copies.append((stat.st_mtime, stat.st_size, entry.path))
        total = sum(size for _, size, _ in copies)
        for _, size, name in sorted(copies):
            if total + keep_free <= self.max_bytes:
                break
            Path(name).unlink(missing_ok=True)
            total -= size

    def entries(self) -> list[str]:
        """SHA-256 names of the copies held now."""
        if not self.root.exists():
            return []
        return sorted(e.name for e in os.scandir(self.root) if len(e.name) == 64)

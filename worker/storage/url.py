"""``GRADQ_ARTIFACT_URL`` -> a backend (``file:///path`` or ``s3://bucket/prefix``) and a store."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import urlparse

from worker.storage.artifacts import ArtifactStore
from worker.storage.base import Backend
from worker.storage.filesystem import FileBackend
from worker.storage.s3 import S3Backend

_opened: dict[tuple[str, str | None], Backend] = {}
_lock = threading.Lock()
# a forked Celery child must not share the parent's HTTP connections: build its own clients
os.register_at_fork(after_in_child=_opened.clear)


def open_backend(url: str, s3_endpoint_url: str | None = None) -> Backend:
    """The backend for ``url`` (one per URL and process: boto3 clients are costly to build).

    ValueError naming GRADQ_ARTIFACT_URL for any other scheme or a URL without a path/bucket.
    """
    with _lock:
        backend = _opened.get((url, s3_endpoint_url))
        if backend is None:
            backend = _opened[(url, s3_endpoint_url)] = _build(url, s3_endpoint_url)
        return backend


def _build(url: str, s3_endpoint_url: str | None) -> Backend:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc or not parsed.path:
            raise ValueError(f"GRADQ_ARTIFACT_URL {url!r}: write file:///absolute/path")
        return FileBackend(Path(parsed.path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"GRADQ_ARTIFACT_URL {url!r}: write s3://bucket/prefix")
        import boto3

        client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint_url or None)
        return S3Backend(client, parsed.netloc, parsed.path)
    raise ValueError(f"GRADQ_ARTIFACT_URL {url!r}: the scheme must be file:// or s3://")


def artifact_store(redis, settings=None) -> ArtifactStore:
    """The store configured by ``settings`` (default: the process settings) on ``redis``."""
    if settings is None:
        from worker.config import get_settings

        settings = get_settings()
    return ArtifactStore(redis, open_backend(settings.artifact_url, settings.s3_endpoint_url))

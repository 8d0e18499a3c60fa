"""Every storage test runs against both backends: a temp directory and a real S3 server."""

from __future__ import annotations

import secrets

import pytest

from worker.storage.artifacts import ArtifactStore
from worker.storage.filesystem import FileBackend
from worker.storage.s3 import S3Backend


@pytest.fixture(params=["file", "s3"])
def backend(request, tmp_path):
    """A fresh, empty backend: a folder, or a prefix of its own in the session's S3 bucket."""
    if request.param == "file":
        return FileBackend(tmp_path / "artifacts")
    from tests.seaweed import BUCKET

    server = request.getfixturevalue("s3_server")
    return S3Backend(server.client, BUCKET, f"t-{secrets.token_hex(6)}")


@pytest.fixture
def artifacts(backend, redis_client) -> ArtifactStore:
    return ArtifactStore(redis_client, backend)


def overwrite(backend, key: str, data: bytes) -> None:
    """Replace an object's bytes behind the store's back (what disk rot or a bad copy does)."""
    backend.write(key, [data])

"""Artifacts (data sets, model weights, checkpoints) in files or S3, their records in Redis.

``artifact_store(redis, settings)`` gives the configured ``ArtifactStore``; every read checks the
object's size and SHA-256 against its record (``ArtifactError`` naming the object otherwise).
"""

from worker.storage.artifacts import ArtifactStore
from worker.storage.base import ArtifactCorruptError, ArtifactError, ArtifactMissingError
from worker.storage.url import artifact_store, open_backend

__all__ = [
    "ArtifactCorruptError",
    "ArtifactError",
    "ArtifactMissingError",
    "ArtifactStore",
    "artifact_store",
    "open_backend",
]

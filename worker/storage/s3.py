"""``s3://bucket/prefix``: artifacts in any S3-compatible store, through boto3.

Endpoint, region and credentials come from boto3's usual chain (``AWS_*`` variables, config
files, instance roles); ``GRADQ_S3_ENDPOINT_URL`` points it at a self-hosted store (SeaweedFS,
MinIO). Large objects go up as multipart uploads (boto3's transfer manager, parts of
``CHUNK_BYTES``) and come down as a streamed GET. An S3 PUT is atomic by itself: an interrupted
multipart upload never becomes a visible object (and is aborted by the transfer manager).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from worker.storage.base import (
    CHUNK_BYTES,
    ArtifactMissingError,
    ObjectStat,
    check_key,
    fill_from_stream,
)


class PartsReader(io.RawIOBase):
    """A read-only file over a sequence of buffers, so boto3 can upload them without a join."""

    def __init__(self, parts: Iterable[memoryview | bytes]):
        self._parts = iter(parts)
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not len(self._current):
            part = next(self._parts, None)
            if part is None:
                return 0
            self._current = memoryview(part).cast("B")
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count


class S3Backend:
    """Objects under ``prefix`` in ``bucket``; ``client`` is a boto3 S3 client."""

    def __init__(self, client, bucket: str, prefix: str = ""):
        from boto3.s3.transfer import TransferConfig

        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.transfer = TransferConfig(
            multipart_threshold=CHUNK_BYTES, multipart_chunksize=CHUNK_BYTES, use_threads=True
        )

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def write(self, key: str, parts: Iterable[memoryview | bytes]) -> None:
        reader = io.BufferedReader(PartsReader(parts), buffer_size=CHUNK_BYTES)
        self.client.upload_fileobj(reader, self.bucket, self._name(key), Config=self.transfer)

    def read(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        return _chunks(self._get(key)["Body"], chunk_bytes)

    def read_into(self, key: str, out: memoryview, chunk_bytes: int = CHUNK_BYTES) -> Iterator[int]:
        response = self._get(key)  # now: a missing object fails before the first chunk
        return _fill(response, out, chunk_bytes, key, self.url)

    def _get(self, key: str) -> dict:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ArtifactMissingError(f"artifact {key!r} is missing from {self.url}") from None
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def list(self, prefix: str = "") -> Iterator[ObjectStat]:
        start = f"{self.prefix}/" if self.prefix else ""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start + prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"][len(start) :]
                yield ObjectStat(key, int(item["Size"]), item["LastModified"].timestamp())


def _chunks(body, chunk_bytes: int) -> Iterator[bytes]:
    with body:
        yield from body.iter_chunks(chunk_bytes)


def _fill(response: dict, out: memoryview, chunk_bytes: int, key: str, where: str) -> Iterator[int]:
    announced = int(response.get("ContentLength", 0))
    return fill_from_stream(response["Body"], announced, out, chunk_bytes, key, where)

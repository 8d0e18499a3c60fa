"""ArtifactStore on both backends: round trips, integrity checks, atomic writes, the collector."""

from __future__ import annotations

import numpy as np
import pytest

from tests.harness import wait_until
from tests.storage.conftest import overwrite
from worker.storage.artifacts import RECORDS
from worker.storage.base import ArtifactCorruptError, ArtifactMissingError
from worker.storage.collector import Collector, collect

OWNER = "gradq:model:mdl_owner"


def test_a_multipart_object_reads_back_byte_identical_with_its_record(artifacts, redis_client):
    # 20 MB in three parts: more than one S3 multipart part and more than one read chunk
    data = np.random.default_rng(0).integers(0, 256, 20 * 1024 * 1024, dtype=np.uint8)
    parts = [memoryview(data[:7]), memoryview(data[7 : 9 * 2**20]), memoryview(data[9 * 2**20 :])]
    redis_client.set(OWNER, "{}")

    record = artifacts.put("models/a.npz", parts, owner=OWNER, dtype="|u1", shape=[data.size])

    assert artifacts.record("models/a.npz") == record
    assert record["size"] == data.size and record["shape"] == [data.size]
    assert bytes(artifacts.read("models/a.npz")) == data.tobytes()


def test_a_corrupted_object_is_an_error_naming_it(artifacts, backend):
    artifacts.put("models/b.npz", b"x" * 1000, owner=OWNER)
    overwrite(backend, "models/b.npz", b"y" * 1000)

    with pytest.raises(ArtifactCorruptError, match=r"models/b\.npz.*SHA-256"):
        artifacts.read("models/b.npz")


def test_a_truncated_object_is_an_error_naming_it(artifacts, backend):
    artifacts.put("models/c.npz", b"x" * 1000, owner=OWNER)
    overwrite(backend, "models/c.npz", b"x" * 999)

    with pytest.raises(ArtifactCorruptError, match=r"models/c\.npz.*truncated: 999 of 1000"):
        artifacts.read("models/c.npz")


def test_an_object_longer_than_its_record_is_corrupt(artifacts, backend):
    artifacts.put("models/d.npz", b"x" * 1000, owner=OWNER)
    overwrite(backend, "models/d.npz", b"x" * 1001)

    with pytest.raises(ArtifactCorruptError, match=r"models/d\.npz"):
        artifacts.read("models/d.npz")


def test_a_missing_object_is_an_error_naming_it(artifacts, backend):
    artifacts.put("models/e.npz", b"x" * 10, owner=OWNER)
    backend.delete("models/e.npz")

    with pytest.raises(ArtifactMissingError, match=r"models/e\.npz"):
        artifacts.read("models/e.npz")


def test_a_key_without_a_record_is_missing(artifacts):
    with pytest.raises(ArtifactMissingError, match=r"models/none\.npz.*no record"):
        artifacts.read("models/none.npz")


def test_a_write_that_fails_midway_leaves_no_object(artifacts, backend):
    def parts():
        yield b"a" * 1024
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        artifacts.upload("models/f.npz", parts(), owner=OWNER)

    assert [s.key for s in backend.list() if s.key.startswith("models/f.npz")] == []
    with pytest.raises(ArtifactMissingError):
        list(backend.read("models/f.npz"))


def test_a_crash_between_upload_and_record_leaves_an_object_the_collector_removes_after_grace(
    artifacts, backend, redis_client
):
    record = artifacts.upload("models/g.npz", b"z" * 100, owner=OWNER)  # ...then the process dies

    assert artifacts.record("models/g.npz") is None
    young = collect(artifacts, grace_seconds=3600)
    assert young.unreferenced == [] and [s.key for s in backend.list()] == ["models/g.npz"]
    old = collect(artifacts, grace_seconds=3600, now=record["created"] + 3601)
    assert old.unreferenced == ["models/g.npz"]
    assert list(backend.list()) == []


def test_the_collector_keeps_referenced_objects_and_drops_records_whose_owner_is_gone(
    artifacts, backend, redis_client
):
    redis_client.set(OWNER, "{}")
    kept = artifacts.put("models/kept.npz", b"k", owner=OWNER)
    artifacts.put("models/orphan.npz", b"o", owner="gradq:model:mdl_deleted")

    done = collect(artifacts, grace_seconds=60, now=kept["created"] + 61)

    assert done.orphaned == ["models/orphan.npz"] and done.unreferenced == []
    assert redis_client.hkeys(RECORDS) == [b"models/kept.npz"]
    assert [s.key for s in backend.list()] == ["models/kept.npz"]
    assert bytes(artifacts.read("models/kept.npz")) == b"k"


def test_remove_drops_record_and_object(artifacts, backend):
    artifacts.put("datasets/ds_1/x_train", b"123", owner=OWNER)

    artifacts.remove("datasets/ds_1/x_train")

    assert artifacts.record("datasets/ds_1/x_train") is None and list(backend.list()) == []


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_keys_that_could_escape_the_store_are_refused(artifacts, key):
    with pytest.raises(ValueError, match="artifact key"):
        artifacts.upload(key, b"x", owner=OWNER)


def test_the_collector_thread_removes_an_unreferenced_object_once_it_is_old_enough(
    artifacts, backend
):
    artifacts.upload("models/h.npz", b"h", owner=OWNER)  # never published
    collector = Collector(artifacts, grace_seconds=0.2, interval=0.05)

    collector.start()
    try:
        wait_until(lambda: list(backend.list()) == [], 20, "the collector to remove models/h.npz")
    finally:
        collector.stop()


def test_a_file_object_is_on_disk_before_its_name_appears(tmp_path, monkeypatch):
    # a record is published right after write returns and retention then deletes the previous
    # checkpoint: the bytes and the rename must survive a power loss, so both are fsynced first
    import os

    from worker.storage.filesystem import FileBackend

    backend, events, real_fsync, real_replace = FileBackend(tmp_path), [], os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source, target):
        events.append(("rename", str(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)

    backend.write("checkpoints/j/1.ckpt", [b"abc"])

    folder = str(tmp_path / "checkpoints" / "j")
    kinds = [(kind, path.startswith(folder + "/1.ckpt.part-") or path) for kind, path in events]
    assert kinds == [("fsync", True), ("rename", folder + "/1.ckpt"), ("fsync", folder)]

"""Checkpoints as artifacts on both backends: exact round trip, retention, damaged objects."""

from __future__ import annotations

import numpy as np
import pytest

from tests.storage.conftest import overwrite
from worker.fence import Unfenced
from worker.storage.artifacts import ArtifactStore
from worker.storage.base import ArtifactCorruptError
from worker.storage.checkpoints import (
    checkpoint_keys,
    keep_checkpoints,
    load_checkpoint,
    load_checkpoint_meta,
    save_checkpoint,
)
from worker.storage.filesystem import FileBackend

JOB = "job_00000000000000aa"


def state(step: int):
    rng = np.random.default_rng(step)
    model = {"0.W": rng.standard_normal((7, 5)).astype(np.float32), "0.b": np.zeros(5, np.float32)}
    optim = {"m.0.W": rng.standard_normal((7, 5)), "t": np.array(step, dtype=np.int64)}
    meta = {"global_step": step, "history": [{"epoch": 1, "train_loss": 0.5}], "rng": []}
    return model, optim, meta


def test_a_checkpoint_loads_back_bit_identical(artifacts):
    model, optim, meta = state(3)
    save_checkpoint(artifacts, JOB, model, optim, meta, fence=Unfenced(artifacts.redis))

    loaded_model, loaded_optim, loaded_meta = load_checkpoint(artifacts, JOB)

    assert loaded_meta == meta
    for saved, loaded in ((model, loaded_model), (optim, loaded_optim)):
        assert saved.keys() == loaded.keys()
        for name in saved:
            assert loaded[name].dtype == saved[name].dtype
            assert loaded[name].shape == saved[name].shape
            np.testing.assert_array_equal(loaded[name], saved[name])


def test_a_job_without_checkpoints_loads_none(artifacts):
    assert load_checkpoint(artifacts, JOB) is None


def test_retention_keeps_the_newest_k_checkpoints_and_removes_older_objects(artifacts, backend):
    for step in range(1, 6):
        save_checkpoint(artifacts, JOB, *state(step), fence=Unfenced(artifacts.redis), keep=2)

    keys = checkpoint_keys(artifacts, JOB)
    assert [k.split("/")[-1][:10] for k in keys] == ["0000000004", "0000000005"]
    assert sorted(s.key for s in backend.list()) == sorted(keys)
    assert load_checkpoint(artifacts, JOB)[2]["global_step"] == 5


def test_keeping_zero_checkpoints_removes_all_of_a_job(artifacts, backend):
    for step in (1, 2):
        save_checkpoint(artifacts, JOB, *state(step), fence=Unfenced(artifacts.redis))

    removed = keep_checkpoints(artifacts, JOB, 0)

    assert len(removed) == 2 and checkpoint_keys(artifacts, JOB) == []
    assert list(backend.list()) == [] and load_checkpoint(artifacts, JOB) is None


def test_removing_a_jobs_last_checkpoint_removes_its_folder_on_disk(redis_client, tmp_path):
    backend = FileBackend(tmp_path / "artifacts")
    artifacts = ArtifactStore(redis_client, backend)
    for step in (1, 2):
        save_checkpoint(artifacts, JOB, *state(step), fence=Unfenced(redis_client))
    folder = tmp_path / "artifacts" / "checkpoints" / JOB
    assert folder.is_dir()

    keep_checkpoints(artifacts, JOB, 1)
    assert folder.is_dir()  # one checkpoint is still in it
    keep_checkpoints(artifacts, JOB, 0)

    assert not folder.exists()
    assert (tmp_path / "artifacts" / "checkpoints").is_dir()  # only the job's own folder goes


def test_a_file_written_into_a_folder_keeps_it_when_its_neighbour_is_deleted(tmp_path):
    backend = FileBackend(tmp_path)
    backend.write(f"checkpoints/{JOB}/a.ckpt", [b"a"])
    backend.write(f"checkpoints/{JOB}/b.ckpt", [b"b"])

    backend.delete(f"checkpoints/{JOB}/a.ckpt")  # the rmdir fails: b is still there
    backend.delete(f"checkpoints/{JOB}/a.ckpt")  # twice: nothing left to remove, no error

    assert b"".join(backend.read(f"checkpoints/{JOB}/b.ckpt")) == b"b"
    backend.delete(f"checkpoints/{JOB}/b.ckpt")
    backend.write(f"checkpoints/{JOB}/c.ckpt", [b"c"])  # the folder is made again
    assert b"".join(backend.read(f"checkpoints/{JOB}/c.ckpt")) == b"c"


def test_a_truncated_checkpoint_is_an_error_naming_it_never_wrong_weights(artifacts, backend):
    record = save_checkpoint(artifacts, JOB, *state(1), fence=Unfenced(artifacts.redis))
    whole = bytes(artifacts.read(record["key"]))
    overwrite(backend, record["key"], whole[:-64])

    with pytest.raises(ArtifactCorruptError, match=record["key"]):
        load_checkpoint(artifacts, JOB)


def test_the_newest_checkpoints_meta_reads_without_its_arrays(artifacts):
    for step in (1, 2):
        save_checkpoint(artifacts, JOB, *state(step), fence=Unfenced(artifacts.redis))

    assert load_checkpoint_meta(artifacts, JOB) == state(2)[2]
    assert load_checkpoint_meta(artifacts, "job_without_checkpoints") is None


def test_a_save_published_while_retention_trims_keeps_list_and_records_in_step(
    artifacts, redis_client, monkeypatch
):
    # the job ends (trim to one) on one shard while shard 0's writer publishes another save:
    # the trim must not drop a list entry whose record it leaves behind (no list would own it)
    fence = Unfenced(artifacts.redis)
    for step in (1, 2, 3):
        save_checkpoint(artifacts, JOB, *state(step), fence=fence, keep=5)
    real_pipeline, late = redis_client.pipeline, []

    def reading_then_saving(real_lrange):
        def lrange(*range_args):
            seen = real_lrange(*range_args)
            if not late:  # the save lands between the trim's read and its write
                late.append(None)
                late.append(save_checkpoint(artifacts, JOB, *state(4), fence=fence, keep=5))
            return seen

        return lrange

    def pipeline(*args, **kwargs):
        pipe = real_pipeline(*args, **kwargs)
        pipe.lrange = reading_then_saving(pipe.lrange)
        return pipe

    monkeypatch.setattr(redis_client, "pipeline", pipeline)
    monkeypatch.setattr(redis_client, "lrange", reading_then_saving(redis_client.lrange))

    keep_checkpoints(artifacts, JOB, 1)

    listed = checkpoint_keys(artifacts, JOB)
    recorded = [r["key"] for r in artifacts.records() if r["key"].startswith(f"checkpoints/{JOB}/")]
    assert listed == [late[1]["key"]] and recorded == listed

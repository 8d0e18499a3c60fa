"""The background checkpoint writer: saves what was submitted, in order, and reports failures."""

from __future__ import annotations

import numpy as np
import pytest

from worker.fence import Unfenced
from worker.storage.checkpoint_writer import CheckpointWriter
from worker.storage.checkpoints import checkpoint_keys, load_checkpoint

JOB = "job_00000000000000bb"


def test_a_submitted_checkpoint_holds_the_state_at_submit_time_not_later_updates(artifacts):
    writer = CheckpointWriter(artifacts, JOB, keep=2, fence=Unfenced(artifacts.redis))
    weights = np.zeros(1000, np.float32)

    writer.submit({"0.W": weights}, {"t": np.array(1)}, {"global_step": 1})
    weights += 1.0  # the next optimizer step runs while the save is in flight
    writer.close()

    model, _, meta = load_checkpoint(artifacts, JOB)
    assert meta == {"global_step": 1} and not model["0.W"].any()


def test_saves_are_published_in_order_and_retention_applies(artifacts):
    writer = CheckpointWriter(artifacts, JOB, keep=2, fence=Unfenced(artifacts.redis))

    for step in range(1, 5):
        writer.submit({"0.W": np.full(10, step, np.float32)}, {}, {"global_step": step})
    writer.close()

    assert [k.split("/")[-1][:10] for k in checkpoint_keys(artifacts, JOB)] == [
        "0000000003",
        "0000000004",
    ]


def test_a_failed_save_is_raised_by_the_next_submit(artifacts, monkeypatch):
    writer = CheckpointWriter(artifacts, JOB, keep=2, fence=Unfenced(artifacts.redis))

    def fail(*args, **kwargs):
        raise OSError("store unreachable")

    monkeypatch.setattr(artifacts.backend, "write", fail)
    writer.submit({"0.W": np.zeros(3)}, {}, {"global_step": 1})

    with pytest.raises(OSError, match="store unreachable"):
        writer.submit({"0.W": np.zeros(3)}, {}, {"global_step": 2})
    writer.close()  # the error was already reported once

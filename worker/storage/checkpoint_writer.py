"""Checkpoints saved on a background thread, so the training loop pays only for a copy.

Shard 0 writes every checkpoint while its peers wait at the next allreduce; hashing and uploading
tens of megabytes there would stall the whole gang. ``submit`` copies the state (a memcpy) and
returns; one save is in flight at most (bounded memory, saves published in order). A failed save
is raised by the next ``submit`` or by ``close``, so the job fails with the store's message.
A crash mid-save loses only that checkpoint: the previous one is still published, and training
is deterministic, so resuming from it ends with the same weights.
"""

from __future__ import annotations

import json
import threading

import numpy as np

from worker.storage.artifacts import ArtifactStore
from worker.storage.checkpoints import save_checkpoint


class CheckpointWriter:
    """Background ``save_checkpoint`` for one job, published through ``fence`` (a shard's
    ``AttemptFence``: a stale attempt's save is refused, and raised as StaleAttemptError)."""

    def __init__(self, store: ArtifactStore, job_id: str, keep: int, fence):
        self.store, self.job_id, self.keep, self.fence = store, job_id, keep, fence
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, model_state: dict, optimizer_state: dict, meta: dict) -> None:
        """Snapshot the state and save it in the background (after the previous save ends)."""
        self.wait()
        snapshot = (
            {k: np.array(v, copy=True) for k, v in model_state.items()},
            {k: np.array(v, copy=True) for k, v in optimizer_state.items()},
            json.loads(json.dumps(meta)),  # meta is JSON by contract: this is a deep copy
        )
        self._thread = threading.Thread(
            target=self._save, args=snapshot, name=f"gradq-checkpoint-{self.job_id}", daemon=True
        )
        self._thread.start()

    def wait(self) -> None:
        """Block until the save in flight is published; re-raise its error, if any."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self, raise_errors: bool = True) -> None:
        """``wait``, optionally swallowing a save error (when another error is on its way)."""
        try:
            self.wait()
        except Exception:
            if raise_errors:
                raise

    def _save(self, model_state: dict, optimizer_state: dict, meta: dict) -> None:
        try:
            save_checkpoint(
                self.store,
                self.job_id,
                model_state,
                optimizer_state,
                meta,
                fence=self.fence,
                keep=self.keep,
            )
        except BaseException as error:  # handed to the training thread
            self._error = error

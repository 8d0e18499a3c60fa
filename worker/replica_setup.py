"""A shard's starting point: the data set, the model built from the spec's seed (the same on every
shard), the optimizer and schedule, and the state to resume (a checkpoint) or to start from (a
stored model, for fine-tuning)."""

from __future__ import annotations

from dataclasses import dataclass

import nnlib
from nnlib.batching import min_batch_for, steps_per_epoch
from worker.config import Settings
from worker.jobs import JobStore
from worker.models_store import ModelStore
from worker.replica import build_loss, set_rng_states
from worker.storage import ArtifactStore, artifact_store
from worker.storage.checkpoints import load_checkpoint


@dataclass
class Replica:
    """Everything one shard trains: data, model, loss, optimizer, schedule, checkpoint state."""

    spec: dict
    data: object
    model: nnlib.Model
    loss: object
    optimizer: object
    schedule: object
    steps_total: int
    meta: dict
    origin: str = ""  # where the starting weights came from (for the job's log)
    artifacts: ArtifactStore | None = None  # where checkpoints and the model go (prepare sets it)
    # (step, x rows, first-layer output): the next step's forward begun by the update pipeline
    primed: tuple | None = None
    overlap_choice: object = None  # OverlapChoice of this attempt (spec overlap unset, tcp)


def prepare(store: JobStore, job_id: str, settings: Settings) -> Replica:
    """Load the data set, build the model (same seed on every shard) and resume a checkpoint.

    Runs before the shard joins its gang, so slow data loading never counts against the peers'
    step deadline.
    """
    from worker.datasets import load_dataset

    spec = store.get(job_id)["spec"]
    seed = int(spec.get("seed", 0))
    data = load_dataset(spec["dataset"], seed=seed, redis=store.redis, settings=settings)
    model = nnlib.build_model(spec["model"], data.input_shape, seed=seed)
    optimizer = nnlib.optimizers.build(spec["optimizer"], model.parameters())
    # a batchnorm model's last batch joins the one before when it would leave a shard 1 sample
    min_batch = min_batch_for(model.layers, int(spec.get("shards", 1)))
    steps_total = int(spec["epochs"]) * steps_per_epoch(
        len(data.x_train), int(spec["batch_size"]), min_batch
    )
    schedule = nnlib.schedules.build(spec.get("schedule"), spec["optimizer"]["lr"], steps_total)
    meta = {
        "epoch": 0,
        "batch": 0,
        "global_step": 0,
        "history": [],
        "epoch_loss_sum": 0.0,
        "epoch_samples": 0,
        "stopper": None,
        "rng": [],
    }
    origin = f"the spec's seed {seed}"
    artifacts = artifact_store(store.redis, settings)
    resumed = load_checkpoint(artifacts, job_id)
    if resumed is not None:
        model_state, optimizer_state, meta = resumed
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)
        set_rng_states(model, meta["rng"])
        origin = f"the checkpoint at step {meta['global_step']} ({checkpoint_position(meta)})"
    elif spec.get("init_from"):
        origin = _init_from(store, model, spec["init_from"], artifacts)
    loss = build_loss(spec.get("loss", "cross_entropy"))
    return Replica(
        spec, data, model, loss, optimizer, schedule, steps_total, meta, origin, artifacts
    )


def checkpoint_position(meta: dict) -> str:
    """Where in training a checkpoint's ``meta`` is, with epochs counted from 1 as everywhere
    in gradq (``meta["epoch"]`` counts the epochs done, ``meta["batch"]`` the batches of the
    next one): "after epoch 11", or "epoch 12, after batch 30"."""
    if meta["batch"] == 0:
        return f"after epoch {meta['epoch']}"
    return f"epoch {meta['epoch'] + 1}, after batch {meta['batch']}"


def _init_from(store: JobStore, model: nnlib.Model, init_from: dict, artifacts) -> str:
    """Fine-tuning: start from a stored model's weights (the API checked the architecture and
    pinned the reference to a model id at submit, so an alias move cannot change a job)."""
    try:
        stored, metadata = ModelStore(store.redis, artifacts).load_model(init_from["model_id"])
    except KeyError:
        raise ValueError(
            f"init_from.model: {init_from['model']} ({init_from['model_id']}) no longer exists"
        ) from None
    model.load_state_dict(stored.state_dict())
    return f"model {metadata['id']} ({metadata['name']} version {metadata.get('version')})"

"""Checks of a job spec that need data: the data set exists, the model fits its shapes and budget,
the loss fits the targets, batch statistics get enough samples.

Shapes come from ``nnlib.infer_shapes`` (the same shape code that will build the model, but no
arrays), so "impossible" is decided by nnlib; errors come back as 422 naming the field.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
from fastapi import HTTPException, status

import nnlib
from api.schemas.spec import JobSpec
from nnlib import losses, optimizers, schedules
from nnlib.training import early_stopping_from_spec
from worker.worker_registry import training_slots

# Input shapes and classes of the built-in sets, known without loading them (data-sets issue).
IMAGE_SETS: dict[str, tuple[tuple[int, ...], int]] = {
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
}
MIN_BATCH_STATISTICS_SAMPLES = 2
LAYER_INDEX = re.compile(r"layer (?:index )?\[?(\d+)\]?")


def unprocessable(loc: list, message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": loc, "msg": message, "type": "value_error"}],
    )


class DataFacts(NamedTuple):
    """What the checks need to know of a data set, without loading it."""

    input_shape: tuple[int, ...]
    num_classes: int | None  # None: regression targets
    target_shape: tuple[int, ...] = ()  # per sample; () for labels or scalar targets
    target_range: tuple[float, float] | None = None  # regression targets' [min, max] if known
    samples: int | None = None  # uploads: training samples before the validation split


def dataset_facts(spec: JobSpec, tenant: str, dataset_store) -> DataFacts:
    """Input shape and targets of the spec's data set (uploads: as recorded); 422 if unknown."""
    dataset = spec.dataset
    name = getattr(dataset, "name", None)
    if name == "digits":
        return DataFacts((1, 8, 8) if dataset.as_image else (64,), 10)
    if name in IMAGE_SETS:
        return DataFacts(*IMAGE_SETS[name])
    if name == "blobs":
        return DataFacts((dataset.features or 2,), dataset.classes or 3)
    if name == "spirals":
        return DataFacts((2,), dataset.classes or 2)
    info = dataset_store.info(dataset.id)
    if info is None or info.get("tenant") != tenant:
        raise unprocessable(["body", "dataset", "id"], f"data set {dataset.id} not found")
    y_shape = (info.get("shapes") or {}).get("y_train") or [0]
    target_range = info.get("target_range")
    return DataFacts(
        tuple(info["input_shape"]),
        info.get("num_classes"),
        tuple(y_shape[1:]) if info.get("num_classes") is None else (),
        tuple(target_range) if target_range else None,
        y_shape[0] or None,
    )


def _with_sample_shape(message: str, sample_shape: tuple[int, ...]) -> str:
    """nnlib's message names the failing layer's own input shape; a later layer's differs from
    the data set's, so that one is added, but only when the message does not already say it."""
    shape = list(sample_shape)
    if f"input shape {shape}" in message:
        return message
    return f"{message}; the data set's samples have shape {shape}"


def check_model(spec: JobSpec, data: DataFacts, max_parameters: int) -> int:
    """Infer the model's shapes on the data set; 422 naming the layer, the budget, the loss or
    the batch. Nothing is allocated: a 10^9-parameter spec is refused from its shapes.

    Returns the parameter count.
    """
    stored = spec.to_stored()
    try:
        shapes = nnlib.infer_shapes(stored["model"], data.input_shape)
    except ValueError as error:
        match = LAYER_INDEX.search(str(error))
        loc = ["body", "model", "layers"] + ([int(match.group(1))] if match else [])
        raise unprocessable(loc, _with_sample_shape(str(error), data.input_shape)) from None
    parameters = shapes.num_parameters
    if parameters > max_parameters:
        raise unprocessable(
            ["body", "model"],
            f"model has {parameters} parameters; the budget is {max_parameters}"
            " (GRADQ_MAX_PARAMETERS)",
        )
    accuracy = losses.has_accuracy(spec.loss_name, shapes.output_shape)
    checks = (
        ("optimizer", _check_optimizer),
        ("schedule", _check_schedule),
        ("early_stopping", lambda s: _check_early_stopping(s, accuracy)),
    )
    for field, build in checks:
        try:
            build(stored)
        except ValueError as error:
            raise unprocessable(["body", field], str(error)) from None
    try:
        losses.check_targets(
            spec.loss_name, shapes.output_shape, data.num_classes, data.target_shape,
            data.target_range,
        )  # fmt: skip
    except ValueError as error:
        last = len(spec.model.layers) - 1
        raise unprocessable(["body", "loss"], f"{error} (model.layers[{last}])") from None
    _check_batch_statistics(spec, shapes, data.samples)
    return parameters


def _check_batch_statistics(spec: JobSpec, shapes: nnlib.ModelShape, samples: int | None) -> None:
    """Batchnorm normalises each shard's slice of the batch on its own (statistics are not
    synchronised), so every shard needs at least 2 samples per step: 1 sample normalises to 0.
    A training set smaller than the batch is one batch of its own size, so it counts too (the
    built-in sets hold hundreds of samples or more: ``samples`` is None for them)."""
    layers = shapes.batch_statistics_layers
    needed = MIN_BATCH_STATISTICS_SAMPLES * spec.shards
    per_shard = spec.batch_size // spec.shards  # the smallest slice (nnlib.batching.shard_slice)
    if layers and per_shard < MIN_BATCH_STATISTICS_SAMPLES:
        raise unprocessable(
            ["body", "batch_size"],
            f"batch_size {spec.batch_size} over shards {spec.shards} gives {per_shard} sample(s)"
            f" per shard per step; batchnorm (model.layers[{layers[0]}]) needs at least"
            f" {MIN_BATCH_STATISTICS_SAMPLES}: use batch_size >= {needed} or fewer shards",
        )
    if not layers or samples is None:
        return
    split = spec.dataset.validation_split
    training = samples - round(split * samples)  # held out as worker.datasets.base._quotas does
    if training < needed:
        raise unprocessable(
            ["body", "shards"],
            f"the data set's {samples} samples leave {training} for training (validation_split"
            f" {split}), {training // spec.shards} per shard over shards {spec.shards};"
            f" batchnorm (model.layers[{layers[0]}]) needs at least"
            f" {MIN_BATCH_STATISTICS_SAMPLES} per shard: use shards <="
            f" {max(1, training // MIN_BATCH_STATISTICS_SAMPLES)} or a larger data set",
        )


def _check_optimizer(stored: dict) -> None:
    # nnlib refuses options that do not apply to the type (momentum on adam, ...)
    optimizers.build(stored["optimizer"], {"probe": np.zeros(1, dtype=np.float32)})


def _check_schedule(stored: dict) -> None:
    if stored.get("schedule") is not None:
        schedules.build(stored["schedule"], stored["optimizer"]["lr"], 1000)


def _check_early_stopping(stored: dict, has_accuracy: bool) -> None:
    if stored.get("early_stopping") is not None:
        has_validation = stored["dataset"].get("validation_split", 0.1) > 0
        early_stopping_from_spec(stored["early_stopping"], has_validation, has_accuracy)


def check_shards(spec: JobSpec, redis_client, settings) -> None:
    """422 when the spec asks for more shards than the live training workers have slots in all
    (a gang that could never start). With no live worker the job is accepted: workers may be
    restarting, and ``/readyz`` reports their absence."""
    workers, slots = training_slots(redis_client, settings)
    if workers and spec.shards > slots:
        raise unprocessable(
            ["body", "shards"],
            f"{spec.shards} shards need {spec.shards} worker slots at once, but the "
            f"{workers} live training worker(s) have {slots} in all; ask for at most {slots}",
        )


def check_init_from(spec: JobSpec, input_shape: tuple[int, ...], tenant: str, models) -> str:
    """The model id ``init_from.model`` names now; 422 if it is unknown or its architecture
    differs from the spec's, naming the first layer that differs."""
    loc = ["body", "init_from", "model"]
    ref = spec.init_from.model
    model_id = models.registry.resolve(tenant, ref)
    metadata = models.get(model_id) if model_id else None
    if metadata is None or metadata.get("tenant") != tenant:
        raise unprocessable(loc, f"model {ref} not found")
    if list(metadata["input_shape"]) != list(input_shape):
        raise unprocessable(
            loc,
            f"model {ref} takes input shape {metadata['input_shape']}; this job's data set"
            f" gives {list(input_shape)}",
        )
    stored = nnlib.build_model(metadata["architecture"], tuple(input_shape))
    wanted = nnlib.build_model(spec.to_stored()["model"], tuple(input_shape), seed=spec.seed)
    difference = first_difference(stored, wanted)
    if difference is not None:
        raise unprocessable(loc, f"model {ref} does not match this spec: {difference}")
    return metadata["id"]


def first_difference(stored: nnlib.Model, wanted: nnlib.Model) -> str | None:
    """The first spec layer whose type or parameter shapes differ, described; None if none."""
    old, new = stored.spec["layers"], wanted.spec["layers"]
    for index in range(max(len(old), len(new))):
        if index >= len(old) or index >= len(new):
            return f"the model has {len(old)} layers, the spec {len(new)} (layer {index})"
        if old[index].get("type") != new[index].get("type"):
            return (
                f"layer {index} is {old[index].get('type')} in the model,"
                f" {new[index].get('type')} in the spec"
            )
        shapes = [_layer_shapes(model, index) for model in (stored, wanted)]
        if shapes[0] != shapes[1]:
            return (
                f"layer {index} ({new[index]['type']}) has shapes {shapes[0]} in the model,"
                f" {shapes[1]} in the spec"
            )
    return None


def _layer_shapes(model: nnlib.Model, index: int) -> dict[str, list[int]]:
    state = {**model.parameters(), **model.buffers()}
    prefix = f"{index}."
    return {k[len(prefix) :]: list(v.shape) for k, v in state.items() if k.startswith(prefix)}

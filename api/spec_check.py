"""Checks of a job spec that need data: the data set exists, the model fits its shapes and budget.

The model is built with nnlib against the data set's input shape, so "impossible" is decided by
the same code that will train it; errors come back as 422 naming ``model.layers[i]``.
"""

from __future__ import annotations

import re

import numpy as np
from fastapi import HTTPException, status

import nnlib
from api.schemas.spec import JobSpec
from nnlib import optimizers, schedules
from nnlib.training import early_stopping_from_spec
from worker.worker_registry import training_slots

# Input shapes and classes of the built-in sets, known without loading them (data-sets issue).
IMAGE_SETS: dict[str, tuple[tuple[int, ...], int]] = {
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
}
LAYER_INDEX = re.compile(r"layer (?:index )?\[?(\d+)\]?")


def unprocessable(loc: list, message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": loc, "msg": message, "type": "value_error"}],
    )


def dataset_shape(spec: JobSpec, tenant: str, dataset_store) -> tuple[tuple[int, ...], int | None]:
    """(input_shape, num_classes or None for regression) of the spec's data set; 422 if unknown."""
    dataset = spec.dataset
    name = getattr(dataset, "name", None)
    if name == "digits":
        return ((1, 8, 8) if dataset.as_image else (64,)), 10
    if name in IMAGE_SETS:
        return IMAGE_SETS[name]
    if name == "blobs":
        return (dataset.features or 2,), dataset.classes or 3
    if name == "spirals":
        return (2,), dataset.classes or 2
    info = dataset_store.info(dataset.id)
    if info is None or info.get("tenant") != tenant:
        raise unprocessable(["body", "dataset", "id"], f"data set {dataset.id} not found")
    return tuple(info["input_shape"]), info.get("num_classes")


def check_model(
    spec: JobSpec, input_shape: tuple[int, ...], num_classes: int | None, max_parameters: int
) -> int:
    """Build the model against ``input_shape``; 422 naming the layer, the loss or the budget.

    Returns the parameter count.
    """
    stored = spec.to_stored()
    try:
        model = nnlib.build_model(stored["model"], tuple(input_shape), seed=spec.seed)
    except ValueError as error:
        match = LAYER_INDEX.search(str(error))
        loc = ["body", "model", "layers"] + ([int(match.group(1))] if match else [])
        raise unprocessable(loc, f"{error} (input shape {list(input_shape)})") from None
    checks = (
        ("optimizer", _check_optimizer),
        ("schedule", _check_schedule),
        ("early_stopping", _check_early_stopping),
    )
    for field, build in checks:
        try:
            build(stored)
        except ValueError as error:
            raise unprocessable(["body", field], str(error)) from None
    parameters = int(model.num_parameters())
    if parameters > max_parameters:
        raise unprocessable(
            ["body", "model"],
            f"model has {parameters} parameters; the budget is {max_parameters}",
        )
    output_shape = tuple(model.output_shape)
    last = ["body", "model", "layers", len(spec.model.layers) - 1]
    if spec.loss_name == "cross_entropy":
        if num_classes is None:
            raise unprocessable(["body", "loss"], "cross_entropy needs a classification data set")
        if output_shape != (num_classes,):
            raise unprocessable(
                last,
                f"output shape {list(output_shape)}; cross_entropy on this data set"
                f" needs [{num_classes}] (one logit per class)",
            )
    elif spec.loss_name == "binary_cross_entropy" and output_shape != (1,):
        raise unprocessable(
            last, f"output shape {list(output_shape)}; binary_cross_entropy needs [1]"
        )
    return parameters


def _check_optimizer(stored: dict) -> None:
    # nnlib refuses options that do not apply to the type (momentum on adam, ...)
    optimizers.build(stored["optimizer"], {"probe": np.zeros(1, dtype=np.float32)})


def _check_schedule(stored: dict) -> None:
    if stored.get("schedule") is not None:
        schedules.build(stored["schedule"], stored["optimizer"]["lr"], 1000)


def _check_early_stopping(stored: dict) -> None:
    if stored.get("early_stopping") is not None:
        has_validation = stored["dataset"].get("validation_split", 0.1) > 0
        early_stopping_from_spec(stored["early_stopping"], has_validation)


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

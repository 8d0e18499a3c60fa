"""Requests and responses of ``/v1/studies``: a search space over a job spec, and its trials."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from api.schemas.base import RequestModel
from api.schemas.spec import JOB_SPEC_EXAMPLE, JobSpec

StudyStatus = Literal["running", "succeeded", "failed", "cancelled"]
Metric = Literal["val_loss", "val_accuracy", "train_loss", "test_loss", "test_accuracy"]


# a float grid's points low + k * step stop being distinct floats beyond 2**53 of them
MAX_FLOAT_STEPS = 2**53


def _check_range(dimension, low, high, step) -> None:
    if high <= low:
        raise ValueError(f"high ({high}) must be greater than low ({low})")
    if not math.isfinite(high - low):  # -1e308..1e308: every draw overflowed (a 500)
        raise ValueError(f"high - low must be a finite number, got {high} - ({low})")
    if step is not None and (high - low) / step >= MAX_FLOAT_STEPS:
        raise ValueError(
            f"step ({step}) is too small: (high - low) / step = {(high - low) / step:g};"
            f" at most 2**53 steps"
        )
    if dimension.log and low <= 0:
        raise ValueError(f"log needs low > 0, got {low}")
    if dimension.log and step not in (None, 1):
        raise ValueError("log and step cannot be combined")
    if step is not None:
        count = (high - low) / step
        if abs(count - round(count)) > 1e-9 * max(1.0, count):
            raise ValueError(f"high - low ({high - low}) must be a multiple of step ({step})")


class FloatDimension(RequestModel):
    """Real values in [low, high]; ``log``: log-uniform; ``step``: a grid of low + k * step."""

    type: Literal["float"]
    low: FiniteFloat
    high: FiniteFloat
    log: bool = False
    step: FiniteFloat | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _valid(self) -> FloatDimension:
        _check_range(self, self.low, self.high, self.step)
        return self


class IntDimension(RequestModel):
    """Integers low, low + step, ..., high; ``log``: log-uniform (step 1 only)."""

    type: Literal["int"]
    low: StrictInt = Field(ge=-(2**31), le=2**31)
    high: StrictInt = Field(ge=-(2**31), le=2**31)
    log: bool = False
    step: StrictInt = Field(1, ge=1)

    @model_validator(mode="after")
    def _valid(self) -> IntDimension:
        _check_range(self, self.low, self.high, self.step)
        return self


Choice = StrictBool | StrictInt | StrictStr | StrictFloat | None


class CategoricalDimension(RequestModel):
    """One of ``choices`` (numbers, strings, booleans or null)."""

    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _valid(self) -> CategoricalDimension:
        keys = [(type(c).__name__, c) for c in self.choices]
        if len(set(keys)) != len(keys):
            raise ValueError("choices must be distinct")
        if any(isinstance(c, float) and not math.isfinite(c) for c in self.choices):
            raise ValueError("choices must be finite")
        return self


Dimension = Annotated[
    FloatDimension | IntDimension | CategoricalDimension, Field(discriminator="type")
]


class Objective(RequestModel):
    metric: Metric = Field(description="epoch metrics can be pruned on; test_* only at the end")
    direction: Literal["minimize", "maximize"]


STUDY_EXAMPLE = {
    "name": "digits-lr-width",
    "base_spec": JOB_SPEC_EXAMPLE | {"shards": 1},
    "space": {
        "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "model.layers[1].units": {"type": "int", "low": 16, "high": 128, "step": 16},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
    },
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "max_trials": 12,
    "max_parallel": 2,
    "max_failed": 2,
    "sampler": "tpe",
    "pruner": "median",
    "seed": 0,
}


class StudyIn(RequestModel):
    """A study: trials are ``base_spec`` with the space's paths set to Optuna's suggestions."""

    model_config = ConfigDict(json_schema_extra={"examples": [STUDY_EXAMPLE]})

    name: str = Field("study", min_length=1, max_length=80, pattern=r"^[\w .:-]+$")
    base_spec: JobSpec
    space: dict[str, Dimension] = Field(
        min_length=1, max_length=32, description="JSON path in base_spec -> distribution"
    )
    objective: Objective
    max_trials: int = Field(20, ge=1, le=1000)
    max_parallel: int = Field(2, ge=1, le=64, description="counts against the active-job limit")
    max_failed: int = Field(3, ge=0, le=1000, description="failed trials tolerated")
    sampler: Literal["random", "grid", "tpe"] = "tpe"
    pruner: Literal["none", "median", "hyperband"] = "none"
    seed: int = Field(0, ge=0, le=2**32 - 1, description="the sampler's seed")


class StudyPatch(RequestModel):
    """New budget of a running study (either or both)."""

    max_trials: int | None = Field(None, ge=1, le=1000)
    max_parallel: int | None = Field(None, ge=1, le=64)

    @model_validator(mode="after")
    def _something(self) -> StudyPatch:
        if self.max_trials is None and self.max_parallel is None:
            raise ValueError("give max_trials and/or max_parallel")
        return self


class TrialOut(BaseModel):
    trial: int = Field(description="Optuna's trial number (0-based)")
    job_id: str | None
    params: dict[str, Any]
    state: Literal["running", "complete", "pruned", "failed"]
    value: float | None = Field(description="result; last reported epoch while running/pruned")
    epochs: int = Field(description="epochs the trial's job trained")


class BestTrial(BaseModel):
    trial: int
    job_id: str | None
    params: dict[str, Any]
    value: float


class StudyOut(BaseModel):
    """A study: its request, status, best trial and every trial so far."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    status: StudyStatus
    status_reason: str | None = None
    objective: Objective
    sampler: str
    pruner: str
    seed: int
    max_trials: int
    max_parallel: int
    max_failed: int
    space: dict[str, dict[str, Any]]
    base_spec: dict[str, Any]
    best_trial: BestTrial | None = None
    trials: list[TrialOut] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    epochs_total: int = Field(0, description="epochs trained over all trials")
    created_at: str | None = None
    finished_at: str | None = None


class StudyList(BaseModel):
    studies: list[StudyOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page")

"""The job spec accepted by ``POST /v1/jobs``: every field bounded, unknown fields refused.

The worker trusts what is stored, so everything a job can get wrong in its shape is refused here;
what depends on data (shapes, parameter count) is checked by ``api.spec_check`` afterwards.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from api.ids import DATASET_ID_PATTERN
from api.schemas.base import RequestModel
from api.schemas.layers import LayerSpec
from worker.datasets.builtin import BUILTIN_KEYS
from worker.models.refs import parse_model_ref

MAX_LAYERS = 64
BUILTIN_OPTIONS = BUILTIN_KEYS  # one list of each built-in set's options (worker.datasets)


_Strict = RequestModel


class BuiltinDataset(_Strict):
    """A built-in set by name; the other fields shape the ones that take them (data-sets issue)."""

    name: Literal["digits", "mnist", "fashion-mnist", "blobs", "spirals"]
    validation_split: float = Field(0.1, ge=0.0, lt=1.0)
    normalize: Literal["scale", "standardize"] | None = None
    as_image: bool | None = Field(None, description="digits: (1, 8, 8) images instead of (64,)")
    size: int | None = Field(None, ge=10, le=1_000_000, description="blobs/spirals samples")
    classes: int | None = Field(None, ge=2, le=100, description="blobs (<= 100)/spirals (<= 20)")
    features: int | None = Field(None, ge=1, le=1000, description="blobs dimensions")
    noise: float | None = Field(None, ge=0.0, le=10.0, description="blobs/spirals noise")
    turns: float | None = Field(None, ge=0.1, le=10.0, description="spirals turns")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="blobs/spirals seed")

    @model_validator(mode="after")
    def _options_of_this_set(self) -> BuiltinDataset:
        allowed = BUILTIN_OPTIONS[self.name]
        for option in ("as_image", "size", "classes", "features", "noise", "turns", "seed"):
            if getattr(self, option) is not None and option not in allowed:
                raise ValueError(f"dataset.{option} is not an option of {self.name!r}")
        if self.name == "spirals" and self.classes is not None and self.classes > 20:
            raise ValueError(f"dataset.classes: spirals has at most 20 arms, got {self.classes}")
        classes = self.classes or (3 if self.name == "blobs" else 2)
        if self.size is not None and self.size < 2 * classes:
            raise ValueError(f"dataset.size must be at least 2 * classes = {2 * classes}")
        return self


class UploadedDataset(_Strict):
    """A set uploaded through ``POST /v1/datasets``, by its id."""

    id: str = Field(pattern=DATASET_ID_PATTERN, examples=["ds_3f9a1c0e7b2d4a65"])
    validation_split: float = Field(0.1, ge=0.0, lt=1.0)
    normalize: Literal["scale", "standardize"] | None = None


def _dataset_kind(value) -> str | None:
    if isinstance(value, dict):
        return "uploaded" if "id" in value else "builtin" if "name" in value else None
    return "uploaded" if isinstance(value, UploadedDataset) else "builtin"


DatasetSpec = Annotated[
    Annotated[BuiltinDataset, Tag("builtin")] | Annotated[UploadedDataset, Tag("uploaded")],
    Discriminator(
        _dataset_kind,
        custom_error_type="dataset_source",
        custom_error_message="dataset needs 'name' (a built-in set) or 'id' (an uploaded set)",
    ),
]


class ModelSpec(_Strict):
    layers: list[LayerSpec] = Field(min_length=1, max_length=MAX_LAYERS)

    @field_validator("layers", mode="before")
    @classmethod
    def _count_before_validating_each(cls, layers):
        # pydantic checks max_length after validating every item: 10^6 layers took seconds
        if isinstance(layers, list) and len(layers) > MAX_LAYERS:
            raise ValueError(f"{len(layers)} layers; at most {MAX_LAYERS}")
        return layers


class OptimizerSpec(_Strict):
    type: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    lr: float = Field(0.001, gt=0.0, le=10.0)
    momentum: float | None = Field(None, ge=0.0, lt=1.0)
    nesterov: bool | None = None
    weight_decay: float | None = Field(None, ge=0.0, le=1.0)
    betas: (
        Annotated[list[Annotated[float, Field(ge=0.0, lt=1.0)]], Field(min_length=2, max_length=2)]
        | None
    ) = None
    eps: float | None = Field(None, gt=0.0, le=1.0)
    alpha: float | None = Field(None, gt=0.0, lt=1.0, description="rmsprop smoothing")
    clip_norm: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerSpec:
        if self.nesterov and not self.momentum:
            raise ValueError("optimizer.nesterov needs optimizer.momentum > 0")
        return self


class ScheduleSpec(_Strict):
    type: Literal["constant", "step", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0, le=10_000_000)
    step_size: int | None = Field(None, ge=1, le=10_000_000, description="step: steps per decay")
    gamma: float | None = Field(None, gt=0.0, le=1.0, description="step: decay factor")
    min_lr: float | None = Field(None, ge=0.0, description="cosine: final learning rate")


class EarlyStoppingSpec(_Strict):
    patience: int = Field(3, ge=1, le=1000)
    min_delta: float = Field(0.0, ge=0.0)
    monitor: Literal["val_loss", "val_accuracy", "train_loss"] = "val_loss"
    restore_best: bool | None = Field(None, description="Restore the best epoch's weights")


LossName = Literal["cross_entropy", "mse", "binary_cross_entropy"]


class LossSpec(_Strict):
    """A loss with options; ``label_smoothing`` applies to ``cross_entropy`` only."""

    type: LossName
    label_smoothing: float | None = Field(None, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _smoothing_only_for_cross_entropy(self) -> LossSpec:
        if self.label_smoothing is not None and self.type != "cross_entropy":
            raise ValueError(f"loss.label_smoothing applies to cross_entropy only, not {self.type}")
        return self


class InitFrom(_Strict):
    """Start from a stored model's weights (fine-tuning); the architecture must match."""

    model: str = Field(
        max_length=200,
        description="mdl_…, NAME@ALIAS or NAME/versions/N",
        examples=["digits-mlp@production"],
    )

    @field_validator("model")
    @classmethod
    def _a_model_ref(cls, value: str) -> str:
        parse_model_ref(value)  # ModelRefError is a ValueError: a 422 naming init_from.model
        return value


JOB_SPEC_EXAMPLE = {
    "name": "digits-mlp",
    "dataset": {"name": "digits", "validation_split": 0.1},
    "model": {
        "layers": [
            {"type": "flatten"},
            {"type": "dense", "units": 64, "activation": "relu"},
            {"type": "dense", "units": 10},
        ]
    },
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.01},
    "batch_size": 64,
    "epochs": 5,
    "shards": 2,
    "seed": 0,
}


class JobSpec(_Strict):
    """What to train, on what, and how (see the worker issue for the semantics)."""

    model_config = ConfigDict(json_schema_extra={"examples": [JOB_SPEC_EXAMPLE]})

    name: str = Field("job", min_length=1, max_length=100, pattern=r"^[\w .:-]+$")
    model_name: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[\w .:-]+$",
        description="Registry name of the trained model (default: the job's name)",
    )
    init_from: InitFrom | None = None
    dataset: DatasetSpec
    model: ModelSpec
    loss: LossName | LossSpec = "cross_entropy"
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec | None = None
    batch_size: int = Field(64, ge=1, le=65_536)
    epochs: int = Field(10, ge=1, le=1000)
    shards: int = Field(1, ge=1, le=64)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    early_stopping: EarlyStoppingSpec | None = None
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="steps: also checkpoint at every global step that is a multiple of it (with"
        " sync_every > 1, at the first synced step from there); every epoch end checkpoints"
        " anyway",
    )
    max_restarts: int = Field(3, ge=0, le=100)
    sync_every: int = Field(
        1, ge=1, le=10_000, description="local SGD: average weights every k steps (1: gradients)"
    )
    overlap: bool | None = Field(
        None,
        description=(
            "send each layer's gradient while earlier layers are still computed, and update"
            " the model as the averaged parts arrive (same bits); acts over tcp (and through"
            " Redis for small models) only, else the job log says why not; null (default):"
            " over tcp, both ways are timed on the first steps and every 250 steps, and the"
            " faster is kept"
        ),
    )
    compression: Literal["fp16", "bf16", "zstd"] | None = Field(
        None,
        description=(
            "cross-host (tcp) exchange: fp16/bf16 in 16 bits (half the bytes, 2-3 digits);"
            " zstd lossless (the same bits, ~0.7 of the bytes, CPU to compress: for slow links)"
        ),
    )

    @model_validator(mode="after")
    def _batch_covers_shards(self) -> JobSpec:
        # A ValidationError with its own loc, so the 422 names batch_size rather than the whole
        # body (a plain ValueError from a model validator is located at the model).
        if self.batch_size < self.shards:
            message = (
                "batch_size ({batch_size}) must be >= shards ({shards}): every shard needs at"
                " least one sample per step"
            )
            values = {"batch_size": self.batch_size, "shards": self.shards}
            error = PydanticCustomError("value_error", message, values)
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=error, loc=("batch_size",), input=self.batch_size)],
            )
        return self

    @property
    def loss_name(self) -> str:
        return self.loss if isinstance(self.loss, str) else self.loss.type

    def to_stored(self) -> dict:
        """The JSON dict the worker receives: the fields sent, as sent (an explicit null stays:
        ``dataset.normalize: null`` means "no normalization"), plus the defaults of the fields
        left out; unset optional fields are left out so the worker applies its own defaults.
        Re-validating the result gives the same dict."""
        return _without_unset_nulls(
            self.model_dump(mode="json"), self.model_dump(mode="json", exclude_unset=True)
        )


def _without_unset_nulls(full, sent):
    """``full`` minus the null values whose field is absent from ``sent`` (same structure)."""
    if isinstance(full, dict):
        return {
            key: _without_unset_nulls(value, sent.get(key) if isinstance(sent, dict) else None)
            for key, value in full.items()
            if value is not None or (isinstance(sent, dict) and key in sent)
        }
    if isinstance(full, list) and isinstance(sent, list) and len(sent) == len(full):
        return [_without_unset_nulls(f, s) for f, s in zip(full, sent, strict=True)]
    return full

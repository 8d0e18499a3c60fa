"""Responses of the models router and the prediction request/response bodies."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.base import RequestModel


class ModelOut(BaseModel):
    """A trained model: what it computes, what it was trained on, how well it did."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "id": "mdl_5e0c2a9f14b7d3e8",
                    "name": "digits-mlp",
                    "job_id": "job_06985fd740c016ea",
                    "architecture": {"layers": [{"type": "dense", "units": 10}]},
                    "input_shape": [64],
                    "output_shape": [10],
                    "classes": [str(d) for d in range(10)],
                    "num_parameters": 650,
                    "metrics": {"test_loss": 0.12, "test_accuracy": 0.958},
                    "size_bytes": 40349,
                    "created_at": "2026-11-26T23:20:41.512Z",
                }
            ]
        },
    )

    id: str = Field(examples=["mdl_41d2"])
    name: str | None = None
    version: int | None = Field(None, description="Counts up per tenant and name, from 1")
    aliases: list[str] | None = Field(None, description="Aliases pointing at this version")
    source: str | None = Field(None, description="'job' (trained here) or 'upload' (imported)")
    job_id: str | None = None
    dataset: dict[str, Any] | None = Field(None, description="The training job's data set")
    architecture: dict[str, Any] | None = Field(None, description="The model spec")
    input_shape: list[int]
    output_shape: list[int] | None = None
    classes: list[str] | None = None
    label_column: str | None = Field(
        None, description="The training CSV's label column: gradq predict drops it by name"
    )
    num_parameters: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    preprocessing: dict[str, Any] | None = None
    signature: dict[str, Any] | None = Field(
        None, description="Raw input shape and dtype, outputs, classes, preprocessing"
    )
    tags: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    size_bytes: int | None = Field(None, description="Size of the stored .npz")
    created_at: float | str | None = None


class ModelList(BaseModel):
    models: list[ModelOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page")


TagKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:/-]+$")]
TagValue = Annotated[str, StringConstraints(max_length=256)]


class ModelPatch(RequestModel):
    """Replace a model's tags and/or description (fields left out stay as they are)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tags": {"team": "vision"}, "description": "v1"}]},
    )

    tags: dict[TagKey, TagValue] | None = Field(None, max_length=50)
    description: str | None = Field(None, max_length=2000)


class AliasIn(RequestModel):
    """``PUT /v1/registry/{name}/aliases/{alias}``: the version the alias points at."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 3}]})

    version: int = Field(ge=1, le=10**9)


class RegisteredName(BaseModel):
    """A model name: its versions (newest first) and aliases."""

    name: str
    aliases: dict[str, int] = Field(description="alias -> version")
    versions: list[ModelOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for older versions")


class NameSummary(BaseModel):
    """One model name of the registry, without its versions' details."""

    name: str = Field(examples=["digits-mlp"])
    latest_version: int = Field(description="The highest version that exists")
    versions: int = Field(description="How many versions exist")
    aliases: dict[str, int] = Field(description="alias -> version")
    updated_at: str = Field(description="When a version was last registered (ISO 8601 UTC)")


class NameList(BaseModel):
    names: list[NameSummary]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page")


class PredictRequest(BaseModel):
    """One sample or a batch, in the model's input shape or flattened."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"inputs": [[0.0] * 64]}]}
    )

    inputs: list[Any] = Field(description="Nested lists of numbers")


class PredictResponse(BaseModel):
    """Classifiers answer predictions and probabilities; other models their raw outputs."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "predictions": [3],
                    "probabilities": [[0.0, 0.01, 0.0, 0.97, 0.0, 0.01, 0.0, 0.0, 0.01, 0.0]],
                    "labels": ["3"],
                },
                {"outputs": [[1.25]]},
            ]
        }
    )

    predictions: list[int | str] | None = Field(None, description="Class per sample")
    probabilities: list[list[float]] | None = Field(None, description="Softmax per sample")
    labels: list[str] | None = Field(None, description="Class name per sample")
    outputs: list[Any] | None = Field(None, description="Raw outputs (regression)")

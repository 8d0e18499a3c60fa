"""Responses of the models router and the prediction request/response bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    job_id: str | None = None
    architecture: dict[str, Any] | None = Field(None, description="The model spec")
    input_shape: list[int]
    output_shape: list[int] | None = None
    classes: list[str] | None = None
    num_parameters: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    preprocessing: dict[str, Any] | None = None
    size_bytes: int | None = Field(None, description="Size of the stored .npz")
    created_at: float | str | None = None


class ModelList(BaseModel):
    models: list[ModelOut]


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

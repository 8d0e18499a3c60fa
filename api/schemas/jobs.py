"""Responses of the jobs router: the job record as clients see it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running", "cancelling")


class EpochSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    epoch: int
    train_loss: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float | None = None
    samples_per_second: float | None = None
    comm_seconds: float | None = None
    overlap: bool | None = Field(
        None,
        description="whether the epoch's last steps sent gradients during backward (null: one"
        " shard, or the attempt was still measuring which is faster)",
    )


class JobOut(BaseModel):
    """The job record: its state, progress and results."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "id": "job_8c1e2f",
                    "name": "digits-mlp",
                    "status": "running",
                    "status_reason": None,
                    "progress": 0.4,
                    "epoch": 2,
                    "step": 40,
                    "steps_total": 100,
                    "train_loss": 0.31,
                    "metrics": {},
                    "history": [],
                    "restarts": 0,
                    "model_id": None,
                    "created_at": 1764190000.0,
                }
            ]
        },
    )

    id: str
    name: str | None = None
    status: JobStatus
    status_reason: str | None = None
    progress: float = Field(0.0, ge=0.0, le=1.0, description="Fraction of steps done")
    epoch: int | None = None
    step: int | None = None
    steps_total: int | None = None
    train_loss: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    history: list[EpochSummary] = Field(default_factory=list)
    restarts: int = 0
    resumes: int = Field(0, description="Times the job was resumed after a cancel or failure")
    resumable: bool | None = Field(
        None,
        description="GET /v1/jobs/{id} only: cancelled or failed with a checkpoint, so POST"
        " /v1/jobs/{id}/resume can start it again (false: it answers 409)",
    )
    model_id: str | None = None
    study_id: str | None = Field(None, description="The study this job is a trial of")
    trial: int | None = Field(None, description="Its trial number in that study")
    spec: dict[str, Any] | None = Field(None, description="The submitted job spec")
    dataset: dict[str, Any] | None = None
    shards: int | None = None
    epochs: int | None = Field(None, description="Epochs the spec asks for")
    created_at: float | str | None = None
    started_at: float | str | None = None
    finished_at: float | str | None = None
    updated_at: float | str | None = None


class JobList(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page")


class StepSeries(BaseModel):
    step: list[int] = Field(description="Global step at the end of each point (1-based)")
    train_loss: list[float | None] = Field(description="Mean batch loss over the point's steps")
    time: list[float] = Field(description="Unix time the worker recorded the point")


class JobMetrics(BaseModel):
    """A job's curves as columns (the dashboard's charts draw these arrays directly)."""

    job_id: str
    steps: StepSeries
    epochs: dict[str, list[float | int | None]] = Field(
        description="epoch, train_loss, val_loss, val_accuracy, samples_per_second, "
        "comm_seconds, seconds: one value per finished epoch"
    )
    points_recorded: int = Field(description="Points stored so far (pass as ?since= to append)")
    downsampled: bool = Field(description="True when points were averaged down to max_points")

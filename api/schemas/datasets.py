"""Responses of the data sets router."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DatasetOut(BaseModel):
    """An uploaded data set's description (never its arrays)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(examples=["ds_7b2e"])
    name: str | None = None
    filename: str | None = Field(None, description="Uploaded file name")
    sha256: str | None = None
    input_shape: list[int] | None = None
    shapes: dict[str, list[int]] | None = None
    dtype: str | None = None
    num_classes: int | None = None
    classes: list[str] | None = None
    task: str | None = Field(None, examples=["classification"])
    is_image: bool | None = None
    pixel_max: float | None = None
    size_bytes: int | None = Field(None, description="Bytes of the stored arrays")
    created_at: str | None = None


class DatasetList(BaseModel):
    datasets: list[DatasetOut]

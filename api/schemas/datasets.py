"""Responses of the data sets router."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DatasetOut(BaseModel):
    """An uploaded data set's description (never its arrays)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "id": "ds_9a41c07e2b5d6f13",
                    "name": "table.csv",
                    "filename": "table.csv",
                    "sha256": "3b1f" + "0" * 60,
                    "input_shape": [12],
                    "shapes": {"x_train": [900, 12], "y_train": [900]},
                    "dtype": "<f4",
                    "num_classes": 3,
                    "task": "classification",
                    "size_bytes": 46800,
                    "created_at": "2026-11-26T23:20:41Z",
                }
            ]
        },
    )

    id: str = Field(examples=["ds_7b2e"])
    name: str | None = None
    filename: str | None = Field(None, description="Uploaded file name")
    sha256: str | None = None
    input_shape: list[int] | None = None
    shapes: dict[str, list[int]] | None = None
    dtype: str | None = None
    num_classes: int | None = None
    classes: list[str] | None = Field(
        None, description="Class names: a CSV's text labels sorted, else '0'..'C-1'"
    )
    label_column: str | None = Field(None, description="A CSV's label column")
    task: str | None = Field(None, examples=["classification"])
    is_image: bool | None = None
    pixel_max: float | None = None
    target_range: list[float] | None = Field(
        None, description="Regression targets' [min, max] (submit checks losses against it)"
    )
    size_bytes: int | None = Field(None, description="Bytes of the stored arrays")
    created_at: str | None = None


class DatasetList(BaseModel):
    datasets: list[DatasetOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page")

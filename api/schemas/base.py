"""The base of every request body model: exact JSON types, finite numbers, no unknown fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    """Unknown fields are refused; nothing is coerced (``0`` is not ``false``, ``"2"`` and
    ``2.0`` are not the integer ``2``); NaN, infinities and overflowing literals such as
    ``1e999`` are refused naming the field (JSON has no such numbers)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

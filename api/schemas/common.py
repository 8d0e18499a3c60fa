"""Error bodies and the ``responses=`` tables that document them in OpenAPI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    """Every error: ``detail`` names the field or the thing that was refused."""

    detail: Any = Field(examples=["job job_123 not found"])


class ValidationErrorResponse(BaseModel):
    """422: FastAPI's list of failing fields (``loc`` names each one), or a message."""

    detail: Any = Field(
        examples=[[{"loc": ["body", "epochs"], "msg": "Input should be <= 1000", "type": "x"}]]
    )


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the given status codes, each with the error schema."""
    text = {
        401: "Missing or unknown API key",
        404: "No such resource for this tenant",
        409: "Conflicts with the resource's state",
        413: "Request body too large",
        415: "Unsupported body media type; detail says which to send",
        422: "Invalid input; detail names the field",
        429: "Too many active jobs for this tenant (see Retry-After)",
        503: "A dependency is unavailable",
    }
    table: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = ValidationErrorResponse if code == 422 else ErrorResponse
        table[code] = {"model": model, "description": text[code]}
    return table


COMMON_ERRORS = (401, 413, 503)  # any /v1 route: no key, body too big, Redis down

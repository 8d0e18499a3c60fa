"""``GET /v1/models/{ref}/export?format=onnx``: the model for other runtimes.

The ONNX file takes the same raw inputs as the predict endpoint (preprocessing is in the graph);
see ``worker.models.onnx_export``. ``format=npz`` is the nnlib file (same as ``/weights``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from api.deps import ModelStoreDep, TenantDep
from api.ids import model_not_found
from api.json_body import StrictJSONRoute
from api.model_access import ModelRefDep, add_ref_routes, owned_model
from api.schemas.common import COMMON_ERRORS, errors
from worker.models.onnx_export import OnnxUnavailableError, to_onnx

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=StrictJSONRoute)
MEDIA_TYPES = {"onnx": "application/octet-stream", "npz": "application/octet-stream"}


def export(
    tenant: TenantDep,
    ref: ModelRefDep,
    models: ModelStoreDep,
    format: Annotated[Literal["onnx", "npz"], Query(description="onnx or npz")] = "onnx",  # noqa: A002
):
    """The model as an ONNX file (opset 17, IR 8) or as nnlib's .npz."""
    metadata = owned_model(models, ref, tenant)
    try:
        model, metadata = models.load_model(metadata["id"])
    except KeyError:
        raise model_not_found(ref) from None
    if format == "npz":
        content = models.weights(metadata["id"]) or b""
    else:
        try:
            content = to_onnx(model, metadata)
        except OnnxUnavailableError as error:
            raise HTTPException(501, detail=str(error)) from None
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", f"{metadata['name']}-v{metadata.get('version') or 0}")
    filename = f"{stem}.{format}"  # ASCII only: a header value
    return Response(
        content,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


add_ref_routes(
    router,
    "/export",
    export,
    methods=["GET"],
    response_class=Response,
    responses={
        200: {"description": "The exported file", "content": {"application/octet-stream": {}}},
        501: {"description": "The API host lacks the onnx package"},
    }
    | errors(*COMMON_ERRORS, 404, 422),
    summary="Export a model (ONNX)",
)

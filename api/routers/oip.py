"""The Open Inference Protocol v2 (KServe, Triton, Seldon clients) next to gradq's own routes.

Same keys and tenants as ``/v1``. A model name is a registry name (its latest version), a
``name@alias`` or a model id; ``/versions/{v}`` picks a version. Outputs: ``outputs`` (the
model's raw outputs) and, for classifiers, ``probabilities`` and ``predictions`` - the same numbers
as ``POST /v1/models/{ref}/predict``. Errors follow the protocol: ``{"error": message}``.
"""

from __future__ import annotations

import importlib.metadata
import math

import redis
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api import predict as p
from api.deps import ModelCacheDep, ModelStoreDep, RedisDep, SettingsDep, TenantDep
from api.json_body import StrictJSONRoute
from api.oip_tensors import INPUT_NAME, OipError, output_tensor, parse_infer_request
from api.routers.predict import cached_model
from api.schemas.common import errors

router = APIRouter(prefix="/v2", tags=["open inference protocol"], route_class=StrictJSONRoute)
ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
OIP_ERRORS = {
    code: {"description": text, "content": {"application/json": {"schema": ERROR}}}
    for code, text in ((400, "Bad request or reference"), (404, "No such model for this tenant"))
}
OIP_RESPONSES = OIP_ERRORS | errors(401, 413, 503)  # what every /v2/models route documents
INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {"id": {"type": "string"}, "inputs": {"type": "array"}},
                },
                "example": {
                    "inputs": [
                        {"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [0, 1]}
                    ]
                },
            }
        },
    }
}


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata():
    """The protocol's server metadata; ``binary_tensor_data`` is the binary tensor extension
    that ``tritonclient`` sends by default (``api.oip_tensors``)."""
    return {"name": "gradq", "version": _gradq_version(), "extensions": ["binary_tensor_data"]}


def _gradq_version() -> str:
    try:
        return importlib.metadata.version("gradq")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


@router.get("/health/live", response_model=Live, summary="The server is live")
async def live():
    return {"live": True}


@router.get("/health/ready", response_model=Ready, responses=errors(503), summary="Ready to infer")
def ready(redis_client: RedisDep):
    """Ready when Redis (where models live) answers; inference needs no training worker."""
    try:
        redis_client.ping()
    except redis.RedisError as error:
        raise HTTPException(503, detail=f"redis: unreachable ({error})") from None
    return {"ready": True}


def _error_answer(error: OipError) -> JSONResponse:
    """The protocol's error body, ``{"error": message}``, with the error's HTTP status."""
    return JSONResponse({"error": str(error)}, status_code=error.status)


def _ref(name: str, version: str | None) -> str:
    return name if version is None else f"{name}/versions/{version}"


async def _entry(models, cache, name: str, version: str | None, tenant: str):
    try:
        return await cached_model(models, cache, _ref(name, version), tenant, allow_bare_name=True)
    except HTTPException as error:
        status = 404 if error.status_code == 404 else 400
        raise OipError(str(error.detail), status) from None


def _metadata(entry, versions: list[int]) -> dict:
    meta, model = entry.metadata, entry.model
    outputs = [{"name": "outputs", "datatype": "FP32", "shape": [-1, *model.output_shape]}]
    if _is_classifier(meta):
        classes = 2 if math.prod(model.output_shape) == 1 else math.prod(model.output_shape)
        outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, classes]})
        outputs.append({"name": "predictions", "datatype": "INT64", "shape": [-1]})
    return {
        "name": meta.get("name") or meta["id"],
        "versions": [str(v) for v in versions] or [str(meta.get("version") or 1)],
        "platform": "gradq_nnlib",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, *model.input_shape]}],
        "outputs": outputs,
    }


def _is_classifier(metadata: dict) -> bool:
    return bool(metadata.get("num_classes") or metadata.get("classes"))


async def model_metadata(
    name: str,
    tenant: TenantDep,
    models: ModelStoreDep,
    cache: ModelCacheDep,
    version: str | None = None,
):
    """Input and output tensors of the model."""
    try:
        entry = await _entry(models, cache, name, version, tenant)
    except OipError as error:
        return _error_answer(error)
    meta = entry.metadata
    versions = await run_in_threadpool(models.registry.versions, tenant, meta.get("name") or "")
    return _metadata(entry, sorted(versions))


async def model_ready(
    name: str,
    tenant: TenantDep,
    models: ModelStoreDep,
    cache: ModelCacheDep,
    version: str | None = None,
):
    try:
        await _entry(models, cache, name, version, tenant)
    except OipError as error:
        return _error_answer(error)
    return {"name": name, "ready": True}


async def infer(
    name: str,
    request: Request,
    tenant: TenantDep,
    settings: SettingsDep,
    models: ModelStoreDep,
    cache: ModelCacheDep,
    version: str | None = None,
):
    """JSON tensors (or the binary tensor extension) in; JSON tensors out."""
    try:
        entry = await _entry(models, cache, name, version, tenant)
        header = request.headers.get("inference-header-content-length")
        max_values = settings.max_predict_batch * math.prod(entry.input_shape) + 64
        document, tensor = parse_infer_request(await request.body(), header, max_values)
        try:
            batch = p.as_batch(tensor, entry.input_shape, settings.max_predict_batch)
        except p.InputError as error:
            raise OipError(str(error).replace("inputs:", "inputs[0]:", 1)) from None
        body = await run_in_threadpool(_outputs, entry, batch, document)
    except OipError as error:
        return _error_answer(error)
    return body


def _outputs(entry, batch, document: dict) -> dict:
    x = p.preprocess(batch, entry.metadata.get("preprocessing"))
    raw = entry.model.predict(x)
    tensors = {"outputs": output_tensor("outputs", raw, "FP32")}
    if _is_classifier(entry.metadata):
        answer = p.format_outputs(raw, entry.metadata, entry.extra["softmax"])
        tensors["probabilities"] = output_tensor("probabilities", answer["probabilities"], "FP64")
        tensors["predictions"] = output_tensor("predictions", answer["predictions"], "INT64")
    wanted = document.get("outputs")
    if wanted is not None:
        if not isinstance(wanted, list):
            raise OipError("outputs: expected a list of {'name': ...}")
        names = [o.get("name") if isinstance(o, dict) else None for o in wanted]
        unknown = [n for n in names if n not in tensors]
        if unknown:
            raise OipError(f"outputs: unknown output {unknown[:1]}; the model has {list(tensors)}")
        tensors = {n: tensors[n] for n in names}
    meta = entry.metadata
    response = {
        "model_name": meta.get("name") or meta["id"],
        "model_version": str(meta.get("version") or 1),
        "outputs": list(tensors.values()),
    }
    if isinstance(document.get("id"), str):
        response["id"] = document["id"]
    return response


for suffix in ("", "/versions/{version}"):
    router.add_api_route(
        "/models/{name}" + suffix,
        model_metadata,
        methods=["GET"],
        responses=OIP_RESPONSES,
        summary="Model metadata (input and output tensors)",
    )
    router.add_api_route(
        "/models/{name}" + suffix + "/ready",
        model_ready,
        methods=["GET"],
        responses=OIP_RESPONSES,
        summary="The model can be loaded",
    )
    router.add_api_route(
        "/models/{name}" + suffix + "/infer",
        infer,
        methods=["POST"],
        responses=OIP_RESPONSES,
        openapi_extra=INFER_BODY,
        summary="Inference (Open Inference Protocol v2)",
    )

"""``/v1/models``: trained models, their weights, deletion, and predictions (the fast path)."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from api import predict as p
from api.deps import ModelCacheDep, ModelStoreDep, RedisDep, SettingsDep, TenantDep
from api.ids import ModelId
from api.input_error import InputError
from api.invalidation import publish_deleted
from api.json_body import StrictJSONRoute
from api.json_response import dumps
from api.model_cache import CachedModel, model_nbytes
from api.predict_inputs import read_batch
from api.schemas.common import COMMON_ERRORS, errors
from api.schemas.models import ModelList, ModelOut, PredictRequest, PredictResponse

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=StrictJSONRoute)


def model_view(metadata: dict) -> dict:
    """Stored metadata as the API shows it (``ModelOut`` drops the tenant)."""
    return {k: v for k, v in metadata.items() if v is not None or k != "metrics"}


def owned_model(store, model_id: str, tenant: str) -> dict:
    metadata = store.get(model_id)
    if metadata is None or metadata.get("tenant") != tenant:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"model_id: model {model_id} not found"
        )
    return metadata


@router.get("", response_model=ModelList, responses=errors(*COMMON_ERRORS), summary="List models")
def list_models(tenant: TenantDep, models: ModelStoreDep):
    return {"models": [model_view(m) for m in models.list(tenant)]}


@router.get(
    "/{model_id}",
    response_model=ModelOut,
    responses=errors(*COMMON_ERRORS, 404),
    summary="A model's description",
)
def get_model(tenant: TenantDep, model_id: ModelId, models: ModelStoreDep):
    return model_view(owned_model(models, model_id, tenant))


@router.get(
    "/{model_id}/weights",
    response_class=Response,
    responses={
        200: {
            "description": "The model as .npz (nnlib.load reads it)",
            "content": {"application/octet-stream": {}},
        },
        **errors(*COMMON_ERRORS, 404),
    },
    summary="Download a model's weights",
)
def weights(tenant: TenantDep, model_id: ModelId, models: ModelStoreDep):
    owned_model(models, model_id, tenant)
    content = models.weights(model_id)
    if content is None:
        raise HTTPException(404, detail=f"model_id: model {model_id} not found")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{model_id}.npz"'},
    )


@router.delete(
    "/{model_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(*COMMON_ERRORS, 404),
    summary="Delete a model",
)
def delete_model(
    tenant: TenantDep,
    model_id: ModelId,
    models: ModelStoreDep,
    cache: ModelCacheDep,
    redis_client: RedisDep,
):
    owned_model(models, model_id, tenant)
    models.delete(model_id)
    cache.evict(model_id)
    publish_deleted(redis_client, model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "PNG or JPEG image",
                        }
                    },
                    "required": ["file"],
                }
            },
        },
    }
}


@router.post(
    "/{model_id}/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses=errors(*COMMON_ERRORS, 404, 422),
    openapi_extra=PREDICT_BODY,
    description="413 also answers an image of more than `GRADQ_MAX_IMAGE_PIXELS` pixels.",
    summary="Predict with a model (JSON inputs or an image upload)",
)
async def predict(
    request: Request,
    tenant: TenantDep,
    model_id: ModelId,
    settings: SettingsDep,
    cache: ModelCacheDep,
    models: ModelStoreDep,
):
    """Inputs in the model's input shape (or flattened), one sample or a batch; or a PNG/JPEG."""
    entry = cache.get(model_id)
    if entry is None:
        entry = await run_in_threadpool(_load, models, model_id, cache)
    if entry is None or entry.tenant != tenant:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"model_id: model {model_id} not found"
        )
    try:
        batch = await read_batch(request, entry, settings)
        start = time.perf_counter()
        if batch.size <= p.INLINE_VALUES:
            body = p.predict_batch(entry, batch)
        else:
            body = await run_in_threadpool(p.predict_batch, entry, batch)
    except InputError as error:
        raise HTTPException(error.status_code, detail=str(error)) from None
    request.app.state.metrics.prediction.observe(time.perf_counter() - start)
    return Response(dumps(body), media_type="application/json")


def _load(models, model_id: str, cache) -> CachedModel | None:
    """Load a stored model into the cache (a blocking Redis read: run it in a thread)."""
    try:
        model, metadata = models.load_model(model_id)
    except KeyError:  # no such model (or deleted while loading)
        return None
    entry = CachedModel(
        model_id=model_id,
        tenant=metadata.get("tenant"),
        model=model,
        metadata=metadata,
        input_shape=tuple(model.input_shape),
        nbytes=model_nbytes(model),
        extra={"softmax": p.ends_in_softmax(model.spec)},
    )
    cache.put(entry)
    return entry

"""``POST /v1/models/{ref}/predict``: predictions by id, ``name@alias`` or name and version.

A reference is resolved in Redis on every request (so an alias moved in another process counts
at once); the loaded model is cached by the resolved id. Cached ids with a JSON body are usually
answered earlier, by ``api.fast_predict``.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from api import predict as p
from api.deps import ModelCacheDep, ModelStoreDep, SettingsDep, TenantDep
from api.input_error import InputError
from api.json_body import StrictJSONRoute
from api.json_response import dumps
from api.model_access import ModelRefDep, add_ref_routes, not_found, resolve_id
from api.model_cache import CachedModel, ModelCache, model_nbytes
from api.predict_inputs import read_batch
from api.schemas.common import COMMON_ERRORS, errors
from api.schemas.models import PredictRequest, PredictResponse
from worker.models_store import ModelStore

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=StrictJSONRoute)


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


async def predict(
    request: Request,
    tenant: TenantDep,
    ref: ModelRefDep,
    settings: SettingsDep,
    cache: ModelCacheDep,
    models: ModelStoreDep,
):
    """Inputs in the model's input shape (or flattened), one sample or a batch; or a PNG/JPEG."""
    entry = await cached_model(models, cache, ref, tenant)
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


async def cached_model(
    models: ModelStore, cache: ModelCache, ref: str, tenant: str, allow_bare_name: bool = False
) -> CachedModel:
    """The tenant's model ``ref`` from the cache, loaded on a miss; 404/422 otherwise.

    A model id found in the cache needs no Redis round trip; any other reference is resolved
    first (one HGET), so alias moves are seen by the next request.
    """
    entry = cache.get(ref)
    if entry is None:
        model_id = await run_in_threadpool(resolve_id, models, ref, tenant, allow_bare_name)
        entry = cache.get(model_id) or await run_in_threadpool(_load, models, model_id, cache)
    if entry is None or entry.tenant != tenant:
        raise not_found(ref)
    return entry


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


add_ref_routes(
    router,
    "/predict",
    predict,
    methods=["POST"],
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses=errors(*COMMON_ERRORS, 404, 415, 422),
    openapi_extra=PREDICT_BODY,
    description="413 also answers an image of more than `GRADQ_MAX_IMAGE_PIXELS` pixels.",
    summary="Predict with a model (JSON inputs or an image upload)",
)

"""``/v1/models``: list, import, describe, tag, download and delete models (by id or reference).

Prediction lives in ``api.routers.predict`` and export in ``api.routers.export``; every route that
takes a model accepts ``mdl_…``, ``name@alias`` or ``/{name}/versions/{n}`` (``api.model_access``).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile, status

from api.deps import ModelCacheDep, ModelStoreDep, RedisDep, SettingsDep, TenantDep
from api.ids import model_not_found
from api.invalidation import publish_deleted
from api.json_body import StrictJSONRoute
from api.model_access import ModelRefDep, add_ref_routes, owned_model
from api.paging import CursorQuery, fetch_page
from api.schemas.common import COMMON_ERRORS, errors
from api.schemas.models import ModelList, ModelOut, ModelPatch
from api.schemas.spec import ModelSpec
from worker.models.file_check import ModelFileError, validate_model_file
from worker.models.refs import NAME
from worker.models_store import ModelStore

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=StrictJSONRoute)


def model_view(metadata: dict, store: ModelStore | None = None) -> dict:
    """Stored metadata as the API shows it (``ModelOut`` drops the tenant); with ``store``, the
    aliases that point at this version now."""
    view = {k: v for k, v in metadata.items() if v is not None or k != "metrics"}
    if store is not None and metadata.get("version") is not None:
        aliases = store.registry.aliases(metadata["tenant"], metadata["name"])
        view["aliases"] = [a for a, v in aliases.items() if v == metadata["version"]]
    return view


@router.get("", response_model=ModelList, responses=errors(*COMMON_ERRORS, 422), summary="List")
def list_models(
    tenant: TenantDep,
    models: ModelStoreDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    cursor: CursorQuery = None,
):
    """Your models, newest first, ``limit`` per page (``next_cursor`` for the next)."""
    found, next_cursor = fetch_page(lambda at: models.page(tenant, limit, at), cursor, "models")
    return {"models": [model_view(m) for m in found], "next_cursor": next_cursor}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ModelOut,
    responses=errors(*COMMON_ERRORS, 422),
    summary="Import a model file written by nnlib.save",
)
def import_model(
    tenant: TenantDep,
    settings: SettingsDep,
    models: ModelStoreDep,
    file: Annotated[UploadFile, File(description="The .npz of nnlib.save / gradq train --save")],
    name: Annotated[str | None, Form(max_length=100)] = None,
    description: Annotated[str | None, Form(max_length=2000)] = None,
):
    """Validated as untrusted (no pickle, sizes, architecture, shapes), stored as the next
    version of ``name`` (default: the file's stem)."""
    content = file.file.read(settings.max_model_bytes + 1)
    if len(content) > settings.max_model_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"file: larger than the model size limit of {settings.max_model_bytes} bytes",
        )
    name = name or PurePath(file.filename or "model").stem
    if not NAME.match(name):
        raise HTTPException(
            422, detail=f"name: {name!r} must be 1-100 letters, digits, spaces, '.', ':', '_', '-'"
        )
    try:
        model, metadata = validate_model_file(
            content, settings.max_model_bytes, settings.max_parameters
        )
        ModelSpec.model_validate(model.spec)  # the bounds a trained model's layers obey
    except ModelFileError as error:
        raise HTTPException(422, detail=str(error)) from None
    except ValueError as error:  # pydantic's ValidationError
        raise HTTPException(422, detail=f"architecture: {error}") from None
    saved = models.save(
        model,
        tenant=tenant,
        job_id=None,
        name=name,
        source="upload",
        description=description or "",
        **metadata,
    )
    return model_view(saved, models)


def get_model(tenant: TenantDep, ref: ModelRefDep, models: ModelStoreDep):
    return model_view(owned_model(models, ref, tenant), models)


def patch_model(tenant: TenantDep, ref: ModelRefDep, changes: ModelPatch, models: ModelStoreDep):
    """Replace the tags and/or the description."""
    metadata = owned_model(models, ref, tenant)
    updated = models.update(metadata["id"], changes.model_dump(exclude_none=True))
    if updated is None:
        raise model_not_found(ref)
    return model_view(updated, models)


def weights(tenant: TenantDep, ref: ModelRefDep, models: ModelStoreDep):
    metadata = owned_model(models, ref, tenant)
    content = models.weights(metadata["id"])
    if content is None:
        raise model_not_found(ref)
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{metadata["id"]}.npz"'},
    )


def delete_model(
    tenant: TenantDep,
    ref: ModelRefDep,
    models: ModelStoreDep,
    cache: ModelCacheDep,
    redis_client: RedisDep,
):
    """The version goes, with its aliases; every API process drops it from its cache."""
    model_id = owned_model(models, ref, tenant)["id"]
    models.delete(model_id)
    cache.evict(model_id)
    publish_deleted(redis_client, model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


NPZ = {"description": "The model as .npz (nnlib.load reads it)"}
add_ref_routes(
    router,
    "/weights",
    weights,
    methods=["GET"],
    response_class=Response,
    responses={200: {**NPZ, "content": {"application/octet-stream": {}}}}
    | errors(*COMMON_ERRORS, 404, 422),
    summary="Download a model's weights",
)
add_ref_routes(
    router,
    "",
    get_model,
    methods=["GET"],
    response_model=ModelOut,
    responses=errors(*COMMON_ERRORS, 404, 422),
    summary="A model's description",
)
add_ref_routes(
    router,
    "",
    patch_model,
    methods=["PATCH"],
    response_model=ModelOut,
    responses=errors(*COMMON_ERRORS, 404, 422),
    summary="Set a model's tags and description",
)
add_ref_routes(
    router,
    "",
    delete_model,
    methods=["DELETE"],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(*COMMON_ERRORS, 404, 422),
    summary="Delete a model",
)

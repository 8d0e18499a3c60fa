"""``/v1/registry``: the tenant's model names; ``/{name}``: a name's versions and its aliases
(set, moved, removed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from api.deps import ModelStoreDep, TenantDep
from api.json_body import StrictJSONRoute
from api.paging import CursorQuery, fetch_page
from api.routers.models import model_view
from api.schemas.common import COMMON_ERRORS, errors
from api.schemas.models import AliasIn, NameList, RegisteredName
from worker.models.refs import ALIAS_PATTERN, NAME_PATTERN
from worker.models.registry import VersionNotFoundError

router = APIRouter(prefix="/v1/registry", tags=["registry"], route_class=StrictJSONRoute)
Name = Annotated[str, Path(pattern=f"^{NAME_PATTERN}$", examples=["digits-mlp"])]
Alias = Annotated[str, Path(pattern=f"^{ALIAS_PATTERN}$", examples=["production"])]


@router.get(
    "",
    response_model=NameList,
    responses=errors(*COMMON_ERRORS, 422),
    summary="Your model names, most recently registered first",
)
def list_names(
    tenant: TenantDep,
    models: ModelStoreDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    cursor: CursorQuery = None,
):
    """Each name with its latest version, how many versions it has and its aliases; the
    versions themselves are at ``/v1/registry/{name}``."""
    found, next_cursor = fetch_page(
        lambda at: models.registry.page_names(tenant, limit, at), cursor, "registry"
    )
    return {"names": found, "next_cursor": next_cursor}


@router.get(
    "/{name}",
    response_model=RegisteredName,
    responses=errors(*COMMON_ERRORS, 404, 422),
    summary="A model name: its versions (newest first) and aliases",
)
def get_name(
    name: Name,
    tenant: TenantDep,
    models: ModelStoreDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    cursor: CursorQuery = None,
):
    versions = models.registry.versions(tenant, name)
    aliases = models.registry.aliases(tenant, name)
    if not versions:
        raise HTTPException(404, detail=f"name: no model named {name!r}")

    def newest_first(below: str | None) -> tuple[list[int], int | None]:
        numbers = [v for v in versions if below is None or v < int(below)]
        page = numbers[:limit]
        return page, (page[-1] if len(numbers) > limit else None)

    page, next_cursor = fetch_page(newest_first, cursor, f"registry/{name}")
    found = [models.get(versions[v]) for v in page]
    views = []
    for metadata in found:
        if metadata is not None:
            view = model_view(metadata)
            view["aliases"] = [a for a, v in aliases.items() if v == metadata["version"]]
            views.append(view)
    return {"name": name, "aliases": aliases, "versions": views, "next_cursor": next_cursor}


@router.put(
    "/{name}/aliases/{alias}",
    responses=errors(*COMMON_ERRORS, 404, 422),
    summary="Point an alias at a version (set or move it)",
)
def set_alias(name: Name, alias: Alias, body: AliasIn, tenant: TenantDep, models: ModelStoreDep):
    """Takes effect for the next request in every API process (``name@alias``)."""
    try:
        models.registry.set_alias(tenant, name, alias, body.version)
    except VersionNotFoundError:
        raise HTTPException(
            404, detail=f"version: {name}/versions/{body.version} not found"
        ) from None
    return {"name": name, "alias": alias, "version": body.version}


@router.delete(
    "/{name}/aliases/{alias}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(*COMMON_ERRORS, 404, 422),
    summary="Remove an alias",
)
def delete_alias(name: Name, alias: Alias, tenant: TenantDep, models: ModelStoreDep):
    if not models.registry.delete_alias(tenant, name, alias):
        raise HTTPException(404, detail=f"alias: {name}@{alias} not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

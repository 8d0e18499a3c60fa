"""From a ``{ref}`` in a path to the tenant's model: parse, resolve, check ownership.

Every model route is served at two paths: ``/v1/models/{model_id}`` (an id or ``name@alias``)
and ``/v1/models/{name}/versions/{version}``; either becomes one reference string, validated by
``worker.models.refs`` (the one definition of a reference).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, get_type_hints

from fastapi import APIRouter, Depends, HTTPException

from api.ids import ModelId, model_not_found
from worker.models.refs import ModelRefError, parse_model_ref
from worker.models_store import ModelStore


async def ref_from_version(name: str, version: int) -> str:
    """``/v1/models/{name}/versions/{version}``; a malformed one is a 404 (as a malformed id)."""
    ref = f"{name}/versions/{version}"
    try:
        parse_model_ref(ref)
    except ModelRefError:
        raise not_found(ref) from None
    return ref


# ``/v1/models/{model_id}``: a model id or ``name@alias``, format-checked by ``api.ids``
ModelRefDep = ModelId


def not_found(ref: str) -> HTTPException:
    return model_not_found(ref)


def resolve_id(store: ModelStore, ref: str, tenant: str, allow_bare_name: bool = False) -> str:
    """The model id ``ref`` means for ``tenant``: 404 if malformed or if nothing matches (a
    malformed reference says no more than an unknown one, like ``api.ids``)."""
    try:
        model_id = store.registry.resolve(tenant, ref, allow_bare_name)
    except ModelRefError:
        raise not_found(ref) from None
    if model_id is None:
        raise not_found(ref)
    return model_id


def owned_model(store: ModelStore, ref: str, tenant: str) -> dict:
    """The metadata of the tenant's model ``ref`` (other tenants' models are 404 too)."""
    metadata = store.get(resolve_id(store, ref, tenant))
    if metadata is None or metadata.get("tenant") != tenant:
        raise not_found(ref)
    return metadata


def add_ref_routes(router: APIRouter, suffix: str, endpoint: Callable, **options) -> None:
    """Serve ``endpoint`` (whose ``ref: ModelRefDep`` names the model) at ``/{model_id}{suffix}``
    and ``/{name}/versions/{version}{suffix}``."""
    router.add_api_route("/{model_id}" + suffix, endpoint, **options)
    versioned = dict(options, summary=f"{options.get('summary', '')} (by name and version)")
    router.add_api_route("/{name}/versions/{version}" + suffix, _by_version(endpoint), **versioned)


def _by_version(endpoint: Callable) -> Callable:
    """A copy of ``endpoint`` whose ``ref`` comes from the name and version path parameters."""
    hints = get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    parameters = [
        p.replace(annotation=Annotated[str, Depends(ref_from_version)])
        if p.name == "ref"
        else p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
    ]
    if inspect.iscoroutinefunction(endpoint):

        async def wrapper(**kwargs):
            return await endpoint(**kwargs)
    else:

        def wrapper(**kwargs):
            return endpoint(**kwargs)

    wrapper.__signature__ = signature.replace(
        parameters=parameters, return_annotation=hints.get("return", signature.empty)
    )
    wrapper.__name__ = endpoint.__name__ + "_by_version"
    wrapper.__doc__ = endpoint.__doc__
    return wrapper

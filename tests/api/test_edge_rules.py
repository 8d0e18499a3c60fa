"""Rules every route must follow, checked over the whole app so a new router can't miss them."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute
from pydantic import BaseModel

from api.json_body import StrictJSONRoute
from api.schemas.base import RequestModel


def api_routes(app) -> list[APIRoute]:
    """Every APIRoute, including those of included routers (FastAPI keeps them nested)."""
    found, pending = [], list(app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            pending.extend(route.original_router.routes)
    assert len(found) >= 17, [getattr(r, "path", r) for r in found]
    return found


def test_every_route_parses_json_bodies_strictly(app):
    loose = [r.path for r in api_routes(app) if not isinstance(r, StrictJSONRoute)]
    assert loose == [], "give these routers route_class=StrictJSONRoute (api/json_body.py)"


def test_every_json_body_model_is_a_request_model(app):
    bodies = [
        (route.path, param.field_info.annotation)
        for route in api_routes(app)
        for param in route.dependant.body_params
        if inspect.isclass(param.field_info.annotation)
        and issubclass(param.field_info.annotation, BaseModel)
    ]
    assert bodies, "expected at least the job spec"
    loose = [
        (path, model.__name__) for path, model in bodies if not issubclass(model, RequestModel)
    ]
    assert loose == [], "request bodies derive from api.schemas.base.RequestModel"


def test_every_path_id_goes_through_its_format_check(app):
    """API routes use the id dependencies; dashboard pages (/ui) check with api.ids.is_*_id and
    render their own 404 page (tests/ui/test_pages.py)."""
    for route in api_routes(app):
        if route.path.startswith("/ui/"):
            continue
        for name in ("job_id", "model_id", "dataset_id", "study_id"):
            if "{" + name + "}" in route.path:
                checked = [d.call.__name__ for d in route.dependant.dependencies]
                assert f"_{name}" in checked, (route.path, name)

"""``/docs``: Swagger UI from the vendored assets, so the API's docs work offline (no CDN)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html

from api.json_body import StrictJSONRoute

router = APIRouter(include_in_schema=False, route_class=StrictJSONRoute)
VENDOR = "/ui/static/vendor/swagger-ui"


@router.get("/docs")
def swagger_ui(request: Request):
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url="/ui/static/favicon.svg",
    )

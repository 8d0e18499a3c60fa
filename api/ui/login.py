"""``/ui/login`` and ``/ui/logout``: trade an API key for a session cookie, and back."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import RedirectResponse

from api.json_body import StrictJSONRoute
from api.sessions import (
    COOKIE_NAME,
    check_same_origin,
    create_session,
    delete_session,
    request_session,
)
from api.ui.render import page

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictJSONRoute)


def safe_next(next_path: str | None) -> str:
    """Only this dashboard's own pages (no ``//host`` or ``https://`` open redirects)."""
    if next_path and next_path.startswith("/ui") and not next_path.startswith("//"):
        return next_path
    return "/ui/jobs"


@router.get("/login")
def login_form(request: Request, next: str | None = None):
    if not request.app.state.keyring.configured:
        return RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
    return page(request, "login.html", next=safe_next(next), error=None)


@router.post("/login")
def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=512)] = "",
    next: Annotated[str | None, Form(max_length=2000)] = None,
):
    """A known key starts a session (HttpOnly, SameSite=Strict); the key itself is not kept."""
    check_same_origin(request)  # no logging a victim into an attacker's tenant from elsewhere
    keyring = request.app.state.keyring
    if not keyring.configured:
        return RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
    tenant = keyring.tenant_for(api_key.strip()) if api_key.strip() else None
    if tenant is None:
        error = "api_key: unknown API key" if api_key.strip() else "api_key: enter an API key"
        return page(
            request,
            "login.html",
            status_code=status.HTTP_401_UNAUTHORIZED,
            next=safe_next(next),
            error=error,
        )
    seconds = request.app.state.settings.session_seconds
    session_id, _ = create_session(request.app.state.redis, tenant, seconds)
    response = RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        COOKIE_NAME,
        session_id,
        max_age=seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form(max_length=200)] = ""):
    """Ends the session everywhere (it is deleted from Redis), then back to the login form."""
    check_same_origin(request)
    session = request_session(request)
    if session is not None and hmac.compare_digest(csrf_token.encode(), session["csrf"].encode()):
        delete_session(request.app.state.redis, request.cookies[COOKIE_NAME])
    response = RedirectResponse("/ui/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response

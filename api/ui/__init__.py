"""The web dashboard under ``/ui`` (server-rendered Jinja2 + small vendored static assets).

``install(app)`` adds the pages, the static files, the local Swagger UI at ``/docs`` and the
redirect to the login form for pages opened without a session.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.ui import compare_page, docs, job_pages, login, model_pages
from api.ui.access import LoginRequired, login_url
from api.ui.render import HERE


def install(app: FastAPI) -> None:
    """Mount the dashboard on ``app`` (create it with ``docs_url=None``: ``/docs`` is ours)."""
    for module in (login, compare_page, job_pages, model_pages, docs):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    async def to_login(request: Request, exc: LoginRequired):
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    app.add_exception_handler(LoginRequired, to_login)

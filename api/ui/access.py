"""Who is looking at a page: the session's tenant, or a redirect to the login form.

Pages resolve the tenant the same way the API does (``api.deps.get_tenant``: Bearer key or
session cookie; tenant ``default`` without keys), so tenant isolation is identical; a page
without a valid login sends the browser to ``/ui/login?next=<page>`` instead of answering 401.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status

from api.auth import BearerCredentials
from api.deps import get_tenant


class LoginRequired(Exception):
    """Raised by ``page_tenant``; the app turns it into a redirect to the login form."""

    def __init__(self, next_path: str):
        self.next_path = next_path


async def page_tenant(request: Request, credentials: BearerCredentials) -> str:
    try:
        return await get_tenant(request, credentials)
    except HTTPException as error:
        if error.status_code == status.HTTP_401_UNAUTHORIZED:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target) from None
        raise


def login_url(next_path: str) -> str:
    return "/ui/login?next=" + quote(next_path, safe="")


PageTenant = Annotated[str, Depends(page_tenant)]

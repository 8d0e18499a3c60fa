"""Browser sessions: a login with an API key gets a random session id in an HttpOnly cookie.

The key is checked once at login and never stored in the browser; Redis holds the session
(``gradq:session:<sha256 of the id>`` -> tenant and CSRF token) with an expiry, so logging out or
expiring ends it in every API process. A request authenticated by the cookie may change state
(POST, DELETE, ...) only when it carries the session's CSRF token in ``X-CSRF-Token`` and, if the
browser sent an ``Origin``, comes from this site: SameSite=Strict plus a token, defence in depth.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status

COOKIE_NAME = "gradq_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _key(session_id: str) -> str:
    # only a hash is stored: a Redis dump does not hand out live sessions
    return "gradq:session:" + hashlib.sha256(session_id.encode()).hexdigest()


def create_session(redis, tenant: str, seconds: int) -> tuple[str, dict]:
    """A new session for ``tenant`` lasting ``seconds``: (cookie value, session)."""
    session_id = secrets.token_urlsafe(32)
    session = {"tenant": tenant, "csrf": secrets.token_urlsafe(24)}
    redis.set(_key(session_id), json.dumps(session), ex=seconds)
    return session_id, session


def delete_session(redis, session_id: str) -> None:
    redis.delete(_key(session_id))


def request_session(request: Request) -> dict | None:
    """The session of the request's cookie (None: no cookie, unknown or expired)."""
    if "gradq.session" not in request.scope:
        session_id = request.cookies.get(COOKIE_NAME)
        session = None
        if session_id and len(session_id) < 100:
            raw = request.app.state.redis.get(_key(session_id))
            session = json.loads(raw) if raw is not None else None
        request.scope["gradq.session"] = session
    return request.scope["gradq.session"]


def session_tenant(request: Request) -> str | None:
    """The tenant of a valid session cookie, after the cross-site checks for unsafe methods;
    None when the request has no session (callers then fall back to the Bearer key)."""
    if not request.app.state.keyring.configured:
        return None
    session = request_session(request)
    if session is None:
        return None
    if request.method not in SAFE_METHODS:
        check_same_origin(request)
        token = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode(), session["csrf"].encode()):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail="X-CSRF-Token: missing or not this session's"
            )
    return session["tenant"]


def check_same_origin(request: Request) -> None:
    """403 when the browser says the request comes from another site."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    if origin == "null" or urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"Origin: {origin} is not this site")

"""Bearer-key authentication: every request resolves to exactly one tenant.

The key is read through ``bearer_key`` (FastAPI's ``HTTPBearer``), so the OpenAPI document
declares the scheme and each operation that needs it: Swagger UI at ``/docs`` then shows its
Authorize button. ``auto_error=False`` keeps the answers ours: no keys configured means tenant
``default``, and a missing or unknown key is our 401 with its ``Bearer`` challenge.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.keys import DEFAULT_TENANT, KeyRing

bearer_key = HTTPBearer(
    auto_error=False,
    scheme_name="APIKey",
    bearerFormat="gradq API key",
    description=(
        "`Authorization: Bearer <key>`; `gradq keys create TENANT` prints a key. Not needed when "
        "the server runs without keys (loopback only, tenant `default`)."
    ),
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_key)]


def tenant_for_credentials(
    credentials: HTTPAuthorizationCredentials | None, keyring: KeyRing
) -> str:
    """The caller's tenant; 401 for a missing or unknown key when keys are configured.

    ``credentials`` is None when the header is missing, empty or not ``Bearer <key>``.
    """
    if not keyring.configured:
        return DEFAULT_TENANT
    if credentials is None:
        raise _unauthorized("Authorization: missing 'Bearer <API key>' header")
    tenant = keyring.tenant_for(credentials.credentials)
    if tenant is None:
        raise _unauthorized("Authorization: unknown API key")
    return tenant


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )

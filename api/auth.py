"""Bearer-key authentication: every request resolves to exactly one tenant."""

from __future__ import annotations

from fastapi import HTTPException, Request, status

from api.keys import DEFAULT_TENANT, KeyRing


def tenant_from_request(request: Request, keyring: KeyRing) -> str:
    """The caller's tenant; 401 for a missing or unknown key when keys are configured."""
    if not keyring.configured:
        return DEFAULT_TENANT
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _unauthorized("Authorization: missing 'Bearer <API key>' header")
    tenant = keyring.tenant_for(key.strip())
    if tenant is None:
        raise _unauthorized("Authorization: unknown API key")
    return tenant


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )

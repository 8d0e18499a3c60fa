"""Starting the API server: the no-keys-only-on-loopback rule lives here.

``gradq serve`` and ``gradq up`` both call ``serve()`` (or ``check_bind()`` before starting
uvicorn their own way).
"""

from __future__ import annotations

import ipaddress

from api.keys import KeyRing
from worker.config import Settings, get_settings

# uvicorn's hard bound on a graceful stop: event streams end within a second by themselves
# (api.shutdown); anything still open after this is cancelled
SHUTDOWN_GRACE_SECONDS = 10


class InsecureBindError(RuntimeError):
    """Refusal to serve: no API keys on a non-loopback address, or keys that can't be read."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings, insecure: bool = False) -> str:
    """The start-up notice for ``host``; raises ``InsecureBindError`` when auth would be off
    on a reachable address without ``insecure``."""
    try:
        keyring = KeyRing(settings.api_keys_file, settings.api_keys)
    except ValueError as error:  # a malformed keys file: fail closed, say which line
        raise InsecureBindError(f"refusing to serve: {error}") from None
    if keyring.configured:
        return f"gradq API: API keys required (Bearer) on {host}"
    if is_loopback(host):
        return (
            f"gradq API: no API keys configured; serving WITHOUT authentication on {host}"
            " (loopback only; tenant 'default'). Create keys with `gradq keys create TENANT`."
        )
    if not insecure:
        raise InsecureBindError(
            f"refusing to serve without API keys on {host}, which is not a loopback address:"
            " configure GRADQ_API_KEYS_FILE or GRADQ_API_KEYS, or pass --insecure"
        )
    return f"gradq API: WARNING: serving WITHOUT authentication on {host} (--insecure)"


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    insecure: bool = False,
    workers: int = 1,
    settings: Settings | None = None,
    log=print,
) -> None:
    """Check the bind address, say what mode the API runs in, and run uvicorn (blocks)."""
    import uvicorn

    settings = settings or get_settings()
    log(check_bind(host, settings, insecure))
    uvicorn.run(
        "api.app:app",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )

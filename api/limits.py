"""Request body limits as plain ASGI middleware: 413 by Content-Length, or while streaming.

Plain ASGI (not ``BaseHTTPMiddleware``) so the check costs almost nothing per request.
"""

from __future__ import annotations

import json
from collections.abc import Callable


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse bodies over ``limit_for(path)`` bytes with ``413 {"detail": ...}``."""

    def __init__(self, app, limit_for: Callable[[str], int]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    return await _refuse(send, limit)
        received = 0
        started = refused = False

        async def counting_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not refused:
                    # Answer now: frameworks may turn an exception here into their own 400.
                    refused = True
                    if not started:
                        await _refuse(send, limit)
                    raise BodyTooLarge
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:
                return  # the 413 already went out; drop the app's own error answer
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass


async def _refuse(send, limit: int) -> None:
    body = json.dumps({"detail": f"request body: larger than the limit of {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"connection", b"close"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""The prediction fast path: cached model, JSON body, known key -> answered below FastAPI.

FastAPI's routing and dependency resolution cost ~0.8 ms per request, several times the model's
own work. For the common case (a model already in this process's cache, a JSON body, a key that
belongs to the model's tenant) this ASGI middleware answers directly, with no Redis round trip.
Everything else (cache miss, image upload, bad input, wrong tenant) is passed on, body intact,
to the documented route in ``api.routers.models``, which produces the same answer or the error.
"""

from __future__ import annotations

import re
import time

from api import predict as p
from api.ids import MODEL_ID_PATTERN
from api.json_body import INLINE_PARSE_BYTES
from api.json_response import dumps
from api.keys import DEFAULT_TENANT

PREDICT_PATH = re.compile(rf"^/v1/models/({MODEL_ID_PATTERN.strip('^$')})/predict$")
ROUTE_TEMPLATE = "/v1/models/{model_id}/predict"


class FastPredict:
    """ASGI middleware; ``state`` is the FastAPI app's state (cache, keys, settings, metrics)."""

    def __init__(self, app, state):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        match = PREDICT_PATH.match(scope["path"])
        entry = self.state.model_cache.get(match.group(1)) if match else None
        if entry is None or self._tenant(scope["headers"]) != entry.tenant:
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        answer = self._answer(entry, body)
        if answer is None:
            return await self.app(scope, _replay(body, receive), send)
        scope["gradq.route"] = ROUTE_TEMPLATE
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _tenant(self, headers) -> str | None:
        keyring = self.state.keyring
        if not keyring.configured:
            return DEFAULT_TENANT
        for name, value in headers:
            if name == b"authorization":
                scheme, _, key = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and key.strip():
                    return keyring.tenant_for(key.strip())
        return None

    def _answer(self, entry, body: bytes) -> bytes | None:
        """The response body, or None to let the route handle (and explain) the request."""
        if len(body) > INLINE_PARSE_BYTES:  # the route parses big bodies in a thread
            return None
        try:
            batch = p.batch_from_json(
                body, entry.input_shape, self.state.settings.max_predict_batch
            )
            if batch.size > p.INLINE_VALUES:  # the route runs big batches in a thread
                return None
            start = time.perf_counter()
            result = p.predict_batch(entry, batch)
            self.state.metrics.prediction.observe(time.perf_counter() - start)
        except ValueError:  # refused input (InputError): the route answers and explains it
            return None
        return dumps(result)


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive):
    """A ``receive`` that hands the already-read body to the app, then defers to the client."""
    pending = True

    async def replay():
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

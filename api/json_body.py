"""Request bodies parsed as strict, bounded JSON, off the event loop when they are large.

One parser for every JSON body (FastAPI's own parse, the predict route and its fast path).
Before ``json.loads`` runs, a body with more values than the route can use is refused by counting
its commas, and one nested deeper than ``MAX_JSON_DEPTH`` by a linear NumPy scan (a body nested
thousands deep used to end in a RecursionError and a 500). A parse failure is always a 422 naming
the body and the position; bytes are decoded strictly, and a string holding a lone UTF-16
surrogate (``"\\ud800"``) is a 422 naming its field, not a 500 when the answer is encoded. NaN
and infinities parse as floats here and are refused by the schemas (``allow_inf_nan=False``),
which name the field.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.requests import Request

from worker.unicode_text import lone_surrogate_path, may_hold_surrogates

MAX_JSON_DEPTH = 32  # the deepest valid body (a predict batch of (n, c, h, w)) needs 5
# json.loads holds the GIL for its whole run (0.2 s for 300k numbers, seconds for 16 MB), so even
# in a thread it stalls the event loop: bodies with more values than their route can use are
# refused by counting commas (C speed) before parsing. A job spec needs a few hundred values.
MAX_JSON_VALUES = 20_000
INLINE_PARSE_BYTES = 64 * 1024  # larger bodies are scanned and parsed in a worker thread
_QUOTE, _BACKSLASH, _COMMA = b'"', b"\\", b","
_OPENERS, _CLOSERS = b"[{", b"]}"


class BodyError(ValueError):
    """A body that is not JSON we accept; the message starts with ``body:``."""


class TooManyValues(BodyError):
    """More values than the route can use (refused before parsing)."""


def _outside_strings(data: np.ndarray) -> np.ndarray:
    """Mask of the bytes outside JSON strings, in NumPy (no regex or Python loop holding the
    GIL over megabytes). A quote after an odd run of backslashes is escaped."""
    quotes = data == _QUOTE[0]
    backslashes = data == _BACKSLASH[0]
    if backslashes.any():  # rare: escapes exist only inside strings
        index = np.arange(data.size, dtype=np.int32)
        last_plain = np.maximum.accumulate(np.where(backslashes, -1, index))
        run_before = np.zeros(data.size, dtype=np.int32)
        run_before[1:] = index[:-1] - last_plain[:-1]  # backslashes right before each byte
        quotes &= run_before % 2 == 0
    return ~np.logical_xor.accumulate(quotes)


def json_depth(body: bytes) -> int:
    """How deeply ``body``'s arrays and objects nest, in linear time and constant stack."""
    if not body:
        return 0
    data = np.frombuffer(body, dtype=np.uint8)
    outside = _outside_strings(data)
    opens = ((data == _OPENERS[0]) | (data == _OPENERS[1])) & outside
    closes = ((data == _CLOSERS[0]) | (data == _CLOSERS[1])) & outside
    return int(np.cumsum(opens.astype(np.int32) - closes).max(initial=0))


def too_many_values(body: bytes, max_values: int) -> bool:
    """Whether ``body`` may hold more than ``max_values`` values: its commas plus one. Commas
    inside strings count too; none of the API's JSON bodies has free text that holds them."""
    return body.count(_COMMA) + 1 > max_values


def loads(body: bytes | str, max_values: int = MAX_JSON_VALUES) -> Any:
    """Bytes -> a JSON document; BodyError for bad UTF-8, bad syntax, nesting deeper than
    ``MAX_JSON_DEPTH`` or more than ``max_values`` values (both checked before parsing)."""
    raw = body.encode() if isinstance(body, str) else body
    if too_many_values(raw, max_values):
        raise TooManyValues(f"body: more than {max_values} values")
    # nesting can't exceed the number of openers: most bodies skip the scan (a predict body of
    # one sample has 2); brackets inside strings only make this count larger, never smaller
    openers = raw.count(b"[") + raw.count(b"{")
    if openers > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise BodyError(f"body: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        # strictly: json.loads(bytes) would let the UTF-8 form of a surrogate through
        text = raw.decode(json.detect_encoding(raw))
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise BodyError(
            f"body: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except (UnicodeDecodeError, RecursionError):
        raise BodyError("body: not valid UTF-8 JSON") from None
    except ValueError as error:  # an integer literal beyond Python's 4300-digit limit
        raise BodyError(f"body: not JSON we accept ({error})") from None
    if may_hold_surrogates(text) and (where := lone_surrogate_path(document)) is not None:
        where = f"body: {where}" if where else "body"
        raise BodyError(f"{where}: a lone UTF-16 surrogate escape is not Unicode text")
    return document


async def loads_async(body: bytes) -> Any:
    """``loads`` on the event loop for small bodies, in a worker thread for large ones."""
    if len(body) <= INLINE_PARSE_BYTES:
        return loads(body)
    return await run_in_threadpool(loads, body)


def body_error_response(error: BodyError) -> HTTPException:
    """The 422 of a refused body, in the list form FastAPI uses for validation errors."""
    return HTTPException(422, detail=[{"loc": ["body"], "msg": str(error), "type": "json_invalid"}])


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = await loads_async(await self.body())
            except BodyError as error:
                # FastAPI re-raises HTTPExceptions from body parsing (anything else is a 400)
                raise body_error_response(error) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """An APIRoute whose JSON bodies go through ``loads`` (use as ``route_class``)."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def strict_handler(request: Request):
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler

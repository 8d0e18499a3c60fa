"""Responses are strict JSON: no NaN or Infinity in any body, and echoed input kept short.

``dumps`` is the one encoder of the API (routes, error handlers, the prediction fast path, SSE):
non-finite floats become null, because ``NaN`` is not JSON and clients' parsers reject it, and a
lone UTF-16 surrogate becomes U+FFFD, because it cannot be encoded as UTF-8.
``echo`` is how a 422 shows the client's own input back: short, finite, never the whole body.
"""

from __future__ import annotations

import json
import math
import reprlib
from typing import Any

from fastapi.responses import JSONResponse

ECHO_CHARS = 200  # a refused value is shown back up to this many characters
_echo_repr = reprlib.Repr()  # bounded work whatever the value's size or depth
_echo_repr.maxlevel, _echo_repr.maxlist, _echo_repr.maxdict = 3, 8, 8
_echo_repr.maxstring = _echo_repr.maxother = 80


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def dumps(content: Any) -> bytes:
    """Compact strict JSON bytes; the fast path (no non-finite values) costs one ``json.dumps``."""
    try:
        text = json.dumps(content, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except ValueError:  # a NaN or infinity somewhere: replace them, never send them
        text = json.dumps(
            finite(content), allow_nan=False, separators=(",", ":"), ensure_ascii=False
        )
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate (a record stored before bodies were checked)
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()


def echo(value: Any) -> Any:
    """A client value as an error may show it: small JSON scalars as they are, the rest as a
    truncated ``repr`` string (NaN -> ``"nan"``, a 16 MB list -> its first items and ``...``)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value.bit_length() < 64:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str):
        return value if len(value) <= ECHO_CHARS else value[: ECHO_CHARS - 3] + "..."
    try:
        text = _echo_repr.repr(value)
    except ValueError:  # an integer too long for str() (Python's 4300-digit limit)
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 3] + "..."


class StrictJSONResponse(JSONResponse):
    """The app's default response class: bodies rendered by ``dumps``."""

    def render(self, content: Any) -> bytes:
        return dumps(content)

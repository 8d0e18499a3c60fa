"""Parsed JSON must hold Unicode text: a lone UTF-16 surrogate is refused where it enters.

``json.loads`` turns the escape ``"\\ud800"`` (and, from bytes, the UTF-8-encoded form of a
surrogate) into a Python ``str`` that cannot be encoded as UTF-8. Such a string was stored as
given and failed only later, when a response, a Redis write or a page had to encode it: a 500
for the request and for every later listing that included it. Both client JSON parsers (request
bodies in ``api.json_body`` and model file headers in ``worker.models.file_check``) call
``lone_surrogate_path`` so the whole kind is refused at the edge.
"""

from __future__ import annotations

import re
from typing import Any

# the escape of a surrogate code point (U+D800..U+DFFF); a valid pair also matches, and so does
# an escaped backslash before "ud8..", so a match only means "look closer" (json.loads joins a
# valid pair into one character). Text decoded strictly holds no raw surrogates.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATES = re.compile("[\ud800-\udfff]")


def may_hold_surrogates(json_text: str) -> bool:
    """Whether strictly decoded JSON text could parse into a lone surrogate (C-speed scan)."""
    return _SURROGATE_ESCAPE.search(json_text) is not None


def lone_surrogate_path(document: Any) -> str | None:
    """The location (``"description"``, ``"inputs[0].name"``, ``"tags.<key>"``; ``""`` for the
    document itself) of a key or string holding a lone surrogate, or None. Iterative."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATES.search(value):
                return path  # "" when the document itself is the string
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATES.search(key):
                    return f"{path}.<key>" if path else "<key>"
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None

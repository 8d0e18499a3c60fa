"""Helpers for tests of strict JSON: parse like a strict client, splice raw JSON literals."""

from __future__ import annotations

import json

PLACEHOLDER = "__raw_json_literal__"


def _refuse(constant: str):
    raise ValueError(f"{constant} is not JSON")


def parse_strictly(text: str | bytes):
    """``json.loads`` that refuses NaN, Infinity and -Infinity (as browsers and Go do), and
    bytes that are not UTF-8 (``json.loads`` alone lets encoded surrogates through)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, parse_constant=_refuse)


def with_literal(document, literal: str) -> bytes:
    """``document`` as JSON text, with the string ``PLACEHOLDER`` replaced by ``literal``
    (``NaN``, ``1e999``: values Python's json cannot write on purpose)."""
    return json.dumps(document).replace(json.dumps(PLACEHOLDER), literal).encode()

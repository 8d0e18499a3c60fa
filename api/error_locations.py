"""Validation error locations as paths in the client's own JSON.

Pydantic puts the union member it tried into ``loc``: a tag (``dataset.builtin.name``,
``model.layers.0.dense.units``) or a generated label (``loss.function-after[...]``). Neither is
a key of the document the client sent, so the path led nowhere in it: ``dataset.name`` and
``model.layers.0.units`` are where the fields are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def json_loc(loc: Sequence[int | str], document: Any, error_type: str) -> list[int | str]:
    """``loc`` (``["body", ...]``) without the parts that are not keys or indices of
    ``document`` (the parsed body). A missing field's name (the last part of a ``missing``
    error) stays; a location outside the body, or in a body that is not JSON, is returned
    as it is."""
    if not loc or loc[0] != "body" or not isinstance(document, dict | list):
        return list(loc)
    node, kept, parts = document, ["body"], list(loc[1:])
    for position, part in enumerate(parts):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            kept.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            kept.append(part)
            node = node[part]
        elif position == len(parts) - 1 and error_type == "missing" and isinstance(node, dict):
            kept.append(part)
        # else: a union member's tag or label, which the client never wrote
    return kept


def field_path(loc: Sequence[int | str]) -> str:
    """A location as people write it: ``["body", "model", "layers", 2, "units"]`` ->
    ``model.layers[2].units`` (the dashboard's and the study paths' form); ``"body"`` when the
    location is the body itself."""
    parts = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or (str(loc[0]) if loc else "body")

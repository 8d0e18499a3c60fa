"""Reading the JSON files the CLI sends (job specs, studies): one line saying what is wrong.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, which JSON does not; the HTTP
client then refuses to encode them with a traceback. They are refused here, naming where they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from api.error_locations import field_path


class JsonFileError(ValueError):
    """A JSON file that cannot be read or is not JSON; the message names the file and the place."""


class _NotJson:
    """Stands where the file has ``NaN`` / ``Infinity`` / ``-Infinity`` until it is reported."""

    def __init__(self, word: str):
        self.word = word


def read_json_file(path: Path) -> Any:
    """The parsed document of ``path``. Raises JsonFileError for an unreadable file, invalid
    JSON (with line and column) or a non-finite number (with its path, e.g. ``optimizer.lr``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise JsonFileError(f"{path}: cannot read: {error}") from None
    try:
        document = json.loads(text, parse_constant=_NotJson)
    except json.JSONDecodeError as error:
        raise JsonFileError(f"{path}: not valid JSON: {error}") from None
    found = _first_not_json(document, [])
    if found is not None:
        where, word = found
        place = field_path(where) if where else "the document"
        raise JsonFileError(f"{path}: {place}: {word} is not a number JSON allows")
    return document


def _first_not_json(node: Any, where: list[int | str]) -> tuple[list[int | str], str] | None:
    if isinstance(node, _NotJson):
        return where, node.word
    if isinstance(node, dict):
        children = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    else:
        return None
    for key, child in children:
        found = _first_not_json(child, [*where, key])
        if found is not None:
            return found
    return None

"""Cursor pages for the list routes: one answer for a cursor the list never gave out.

Every list route hands out its store's position (a job's sort key, a score, a version number)
wrapped as ``<position, base64url>.<tag>``, where the tag is a digest of the list's name and the
position. A cursor that does not unwrap, or whose tag is not this list's, is a 422 naming
``cursor``: before, each store judged its own positions, so a garbage job cursor silently
restarted at the first page while a garbage model cursor was refused. The tag is a checksum, not a
secret: a forged cursor can only position a page inside the caller's own list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import HTTPException, Query

TAG_CHARS = 12
# the longest cursor any list hands out, with room: the Query limit of every ``cursor`` parameter
CURSOR_MAX_CHARS = 400
# every list route's ``cursor`` parameter
CursorQuery = Annotated[
    str | None, Query(max_length=CURSOR_MAX_CHARS, description="next_cursor of the previous page")
]


def fetch_page(
    fetch: Callable[[str | None], tuple[list, Any]], cursor: str | None, listing: str
) -> tuple[list, str | None]:
    """``fetch(position)`` -> (items, next position or None), for the ``listing`` list (a name
    such as ``"jobs"``, or ``"registry/<name>"``: a cursor from one list is refused by another).

    Returns (items, next_cursor). HTTP 422 naming ``cursor`` when it is not one this list issued,
    or when ``fetch`` raises ValueError on its position."""
    position = None if cursor is None else _unwrap(cursor, listing)
    try:
        items, after = fetch(position)
    except ValueError:
        raise _not_ours(cursor) from None
    return items, (None if after is None else wrap_cursor(str(after), listing))


def wrap_cursor(position: str, listing: str) -> str:
    """The cursor the ``listing`` list hands out for its store's ``position``."""
    encoded = base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")
    return f"{encoded}.{_tag(position, listing)}"


def _unwrap(cursor: str, listing: str) -> str:
    encoded, _, tag = cursor.rpartition(".")
    try:
        position = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _not_ours(cursor) from None
    if not encoded or tag != _tag(position, listing):
        raise _not_ours(cursor)
    return position


def _tag(position: str, listing: str) -> str:
    return hashlib.sha256(f"{listing}\0{position}".encode()).hexdigest()[:TAG_CHARS]


def _not_ours(cursor: str | None) -> HTTPException:
    return HTTPException(422, detail=f"cursor: {cursor!r} is not a cursor from this list")

"""Cursor pages for the list routes: one answer for a cursor the list never gave out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import HTTPException


def fetch_page(fetch: Callable[[], tuple[list, Any]], cursor: str | None) -> tuple[list, Any]:
    """``fetch()`` -> (items, next_cursor); its ValueError (a cursor not from this list) is an
    HTTP 422 naming ``cursor``."""
    try:
        return fetch()
    except ValueError:
        detail = f"cursor: {cursor!r} is not a cursor from this list"
        raise HTTPException(422, detail=detail) from None

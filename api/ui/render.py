"""Jinja2 templates of the dashboard, the filters they use, and the page context."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates

from api.sessions import request_session

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")


def parse_time(value) -> datetime | None:
    """An ISO 8601 record timestamp (``...Z``) -> aware datetime (None when missing/invalid)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def short_time(value) -> str:
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def duration(start, end=None) -> str:
    """``1h 02m``, ``3m 05s``, ``12.3s`` between two timestamps (end: now)."""
    begin = parse_time(start)
    if begin is None:
        return "—"
    finish = parse_time(end) or datetime.now(begin.tzinfo)
    seconds = max((finish - begin).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def number(value, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:.{digits}g}"


def percent(value) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "—"


def dataset_label(dataset) -> str:
    if not isinstance(dataset, dict):
        return "—"
    return str(dataset.get("name") or dataset.get("id") or dataset.get("path") or "—")


def pretty(value) -> str:
    return json.dumps(value, indent=2, sort_keys=False)


templates.env.filters.update(
    short_time=short_time,
    duration=duration,
    number=number,
    percent=percent,
    dataset_label=dataset_label,
    pretty=pretty,
)


def page(request: Request, template: str, status_code: int = 200, **context):
    """Render ``template`` with what every page needs: tenant, CSRF token, login state."""
    session = request_session(request) if request.app.state.keyring.configured else None
    context.setdefault("tenant", None)
    context.update(
        csrf=session["csrf"] if session else "",
        logged_in=session is not None,
        auth_required=request.app.state.keyring.configured,
    )
    return templates.TemplateResponse(request, template, context, status_code=status_code)

"""Dashboard pages about jobs: the table (with live rows), one job, and the new-job editor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import JobStoreDep
from api.ids import is_job_id
from api.job_metrics import job_metrics
from api.json_body import StrictJSONRoute
from api.paging import fetch_page
from api.schemas.jobs import JobStatus
from api.ui.access import PageTenant
from api.ui.job_views import row_view, timeline
from api.ui.render import page, templates
from worker.job_lifecycle import can_resume

router = APIRouter(include_in_schema=False, route_class=StrictJSONRoute)
# the source tree's examples/, or the working directory's (an installed package, e.g. the image)
EXAMPLES_DIRS = (Path(__file__).resolve().parents[2] / "examples", Path("examples"))
PAGE_SIZE = 50
MAX_LIVE_ROWS = 200


@router.get("/")
def root():
    return RedirectResponse("/ui/jobs", status_code=307)


@router.get("/ui")
def dashboard_root():
    return RedirectResponse("/ui/jobs", status_code=307)


@router.get("/ui/jobs")
def jobs_page(
    request: Request,
    tenant: PageTenant,
    jobs: JobStoreDep,
    status: Annotated[JobStatus | None, Query()] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
):
    """The tenant's jobs, newest first, ``PAGE_SIZE`` a page; filters by status and name."""
    name = (name or "").strip() or None
    cursor_error = None
    try:  # the API's cursors: one handed out by /v1/jobs works here too, any other is named
        records, next_cursor = fetch_page(
            lambda after: jobs.list(
                tenant, status=status, limit=PAGE_SIZE, cursor=after, name=name
            ),
            cursor,
            "jobs",
        )
    except HTTPException as error:
        records, next_cursor, cursor_error = [], None, error.detail
    return page(
        request,
        "jobs.html",
        tenant=tenant,
        rows=[row_view(r) for r in records],
        status=status,
        name=name or "",
        cursor=cursor,
        next_cursor=next_cursor,
        cursor_error=cursor_error,
        statuses=JobStatus.__args__,
    )


@router.get("/ui/jobs/rows", response_class=HTMLResponse)
def job_rows(
    request: Request,
    tenant: PageTenant,
    jobs: JobStoreDep,
    ids: Annotated[str, Query(max_length=MAX_LIVE_ROWS * 24)] = "",
):
    """Fresh ``<tr>`` rows for the given job ids (the jobs page polls this for live rows)."""
    wanted = [i for i in ids.split(",") if i][:MAX_LIVE_ROWS]
    records = [jobs.get(job_id) for job_id in wanted if is_job_id(job_id)]
    rows = [row_view(r) for r in records if r is not None and r.get("tenant") == tenant]
    return templates.TemplateResponse(request, "_job_rows.html", {"rows": rows})


@router.get("/ui/jobs/new")
def new_job_page(
    request: Request,
    tenant: PageTenant,
    jobs: JobStoreDep,
    example: Annotated[str | None, Query(max_length=100)] = None,
    clone: Annotated[str | None, Query(max_length=100)] = None,
):
    """The spec editor, pre-filled from ``examples/`` or from a job being cloned."""
    examples = load_examples()
    chosen = example if example in examples else next(iter(examples), None)
    text = examples.get(chosen, "{}") if chosen else "{}"
    if clone and is_job_id(clone):
        record = jobs.get(clone)
        if record is not None and record.get("tenant") == tenant:
            text, chosen = json.dumps(record.get("spec") or {}, indent=2), None
    return page(request, "new_job.html", tenant=tenant, examples=examples, chosen=chosen, text=text)


@router.get("/ui/jobs/{job_id}")
def job_page(request: Request, job_id: str, tenant: PageTenant, jobs: JobStoreDep):
    """One job: live charts, status and timeline, spec, cancel, model link (404 if not yours)."""
    record = jobs.get(job_id) if is_job_id(job_id) else None
    if record is None or record.get("tenant") != tenant:
        return not_found(request, tenant, f"job {job_id} not found")
    changes, events_after = timeline(jobs.redis, job_id)
    # read again: the record is then at least as new as the feed's starting point, so nothing
    # that happened in between is missing from the page (at worst it is replayed)
    record = jobs.get(job_id) or record
    return page(
        request,
        "job.html",
        tenant=tenant,
        job=row_view(record),
        timeline=changes,
        events_after=events_after or "",
        resumable=can_resume(jobs.redis, record),  # the resume endpoint's rule: 409 otherwise
        # in the page itself: the chart draws without waiting for a first /metrics round trip
        metrics=job_metrics(jobs.redis, record),
    )


def not_found(request: Request, tenant: str, what: str):
    return page(request, "not_found.html", status_code=404, tenant=tenant, what=what)


def load_examples() -> dict[str, str]:
    """``{file stem: pretty JSON}`` of the example specs shipped in ``examples/``."""
    folder = next((d for d in EXAMPLES_DIRS if d.is_dir()), None)
    if folder is None:
        return {}
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            out[path.stem] = json.dumps(json.loads(path.read_text()), indent=2)
        except (OSError, ValueError):
            continue
    return out

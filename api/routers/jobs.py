"""``/v1/jobs``: submit (validated before anything is queued), read, list, cancel, live events."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse, StreamingResponse

from api.deps import (
    DatasetStoreDep,
    JobStoreDep,
    ModelStoreDep,
    RedisDep,
    SettingsDep,
    SubmitDep,
    TenantDep,
)
from api.ids import JobId
from api.job_metrics import job_metrics, metrics_csv_rows, to_csv
from api.json_body import StrictJSONRoute
from api.paging import CursorQuery, fetch_page
from api.schemas.common import COMMON_ERRORS, errors
from api.schemas.jobs import JobList, JobMetrics, JobOut, JobStatus
from api.schemas.spec import JobSpec
from api.spec_check import (
    check_init_from,
    check_model,
    check_shards,
    dataset_facts,
    unprocessable,
)
from api.sse import job_event_stream
from worker.admission import ActiveJobLimitError, DatasetGoneError
from worker.job_lifecycle import can_resume
from worker.jobs import JobFinishedError, JobNotFoundError

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=StrictJSONRoute)
RETRY_AFTER_SECONDS = 30


def job_view(record: dict) -> dict:
    """A stored job record as the API shows it (progress computed when the store has none)."""
    view = dict(record)
    spec = record.get("spec") or {}
    for key in ("name", "dataset", "shards", "epochs"):
        view.setdefault(key, spec.get(key))
    if view.get("progress") is None:
        step, total = record.get("step") or 0, record.get("steps_total") or 0
        done = record.get("status") == "succeeded"
        view["progress"] = 1.0 if done else (min(step / total, 1.0) if total else 0.0)
    for key in ("history", "metrics"):
        if view.get(key) is None:
            view.pop(key, None)
    return view


def public_view(record: dict) -> dict:
    """The record exactly as ``GET /v1/jobs/{id}`` shows it (for the SSE ``state`` event)."""
    return JobOut.model_validate(job_view(record)).model_dump(mode="json")


def owned_job(store, job_id: str, tenant: str) -> dict:
    """The tenant's job record; 404 for missing and for other tenants' jobs alike."""
    record = store.get(job_id)
    if record is None or record.get("tenant") != tenant:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"job_id: job {job_id} not found")
    return record


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(*COMMON_ERRORS, 422, 429),
    summary="Submit a training job",
)
def submit(
    spec: JobSpec,
    tenant: TenantDep,
    settings: SettingsDep,
    datasets: DatasetStoreDep,
    models: ModelStoreDep,
    submit_job: SubmitDep,
    redis_client: RedisDep,
):
    """Validate the spec (bounds, data set, shapes, parameter budget, worker slots), then queue
    it; the active-job limit is checked and the job created in one atomic Redis step."""
    facts = dataset_facts(spec, tenant, datasets)
    check_model(spec, facts, settings.max_parameters)
    check_shards(spec, redis_client, settings)
    stored = spec.to_stored()
    if spec.init_from is not None:  # pinned to an id: later alias moves do not change the job
        stored["init_from"]["model_id"] = check_init_from(spec, facts.input_shape, tenant, models)
    try:
        record = submit_job(stored, tenant, settings.max_active_jobs_per_tenant)
    except DatasetGoneError as error:  # deleted since dataset_facts found it
        message = f"data set {error.dataset_id} not found"
        raise unprocessable(["body", "dataset", "id"], message) from None
    except ActiveJobLimitError as error:
        raise over_the_limit(error) from None
    return job_view(record)


def over_the_limit(error: ActiveJobLimitError) -> HTTPException:
    """The 429 of a submission or resume refused by the tenant's active-job limit."""
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"tenant {error.tenant}: {error.active} queued or running jobs already"
        f" (the limit is {error.limit})",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@router.get(
    "",
    response_model=JobList,
    responses=errors(*COMMON_ERRORS, 422),
    summary="List jobs, newest first",
)
def list_jobs(
    tenant: TenantDep,
    jobs: JobStoreDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: CursorQuery = None,
    name: Annotated[str | None, Query(max_length=200, description="Part of the name")] = None,
):
    records, next_cursor = fetch_page(
        lambda at: jobs.list(tenant, status=status_filter, limit=limit, cursor=at, name=name),
        cursor,
        "jobs",
    )
    return {"jobs": [job_view(r) for r in records], "next_cursor": next_cursor}


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses=errors(*COMMON_ERRORS, 404),
    summary="A job's record",
)
def get_job(tenant: TenantDep, job_id: JobId, jobs: JobStoreDep):
    record = owned_job(jobs, job_id, tenant)
    return job_view(record) | {"resumable": can_resume(jobs.redis, record)}


@router.get(
    "/{job_id}/metrics",
    response_model=JobMetrics,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **errors(*COMMON_ERRORS, 404, 422),
    },
    summary="A job's training curves (JSON columns or CSV)",
)
def metrics(
    tenant: TenantDep,
    job_id: JobId,
    jobs: JobStoreDep,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    max_points: Annotated[int, Query(ge=2, le=100_000)] = 1000,
    since: Annotated[int, Query(ge=0)] = 0,
):
    """Training loss per recorded step (averaged down to ``max_points``) and per-epoch series;
    ``since``: skip that many stored points (a live chart's previous ``points_recorded``)."""
    record = owned_job(jobs, job_id, tenant)
    body = job_metrics(jobs.redis, record, max_points, since)
    if format == "csv":
        return PlainTextResponse(
            to_csv(metrics_csv_rows(body)),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{job_id}-metrics.csv"'},
        )
    return body


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(*COMMON_ERRORS, 404, 409),
    summary="Ask a job to stop",
)
def cancel(tenant: TenantDep, job_id: JobId, jobs: JobStoreDep):
    """Cooperative: the job reaches ``cancelled`` at its next step; 409 if it already ended."""
    owned_job(jobs, job_id, tenant)  # another tenant's job is a 404
    try:
        return job_view(jobs.request_cancel(job_id))
    except JobNotFoundError:
        raise HTTPException(404, detail=f"job_id: job {job_id} not found") from None
    except JobFinishedError as error:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"job_id: job {job_id} already {error.status}; nothing to cancel",
        ) from None


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `state` first, then `progress`/`epoch`/`status`"
            " events in order, then `end` after the final status. A stream may instead end with"
            " `shutdown` (the server is stopping) or `error` (Redis unavailable): reconnect with"
            " `Last-Event-ID`.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(*COMMON_ERRORS, 404, 422),
    },
    summary="Live progress of a job (SSE)",
)
def events(
    request: Request,
    tenant: TenantDep,
    job_id: JobId,
    jobs: JobStoreDep,
    last_event_id: Annotated[str | None, Header(max_length=64, pattern=r"^\d+(-\d+)?$")] = None,
    after: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^\d+(-\d+)?$",
            description="Start after this stream id, like Last-Event-ID (which wins when both are"
            " sent): for a browser's EventSource, which cannot send that header on its first"
            " connection. No `state` event is sent first.",
        ),
    ] = None,
):
    owned_job(jobs, job_id, tenant)
    cursor, field = (last_event_id, "Last-Event-ID") if last_event_id else (after, "after")
    if cursor and any(int(part) >= 2**64 for part in cursor.split("-")):
        raise HTTPException(422, detail=f"{field}: not a stream id of this job")
    return StreamingResponse(
        job_event_stream(jobs, job_id, cursor, public_view, stop=request.app.state.shutdown.is_set),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

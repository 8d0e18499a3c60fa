"""``/v1/jobs/{id}``: delete a finished job, resume a cancelled or failed one, read its logs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    ArtifactsDep,
    JobStoreDep,
    ModelCacheDep,
    RedisDep,
    SettingsDep,
    StartDep,
    TenantDep,
)
from api.ids import JobId
from api.invalidation import publish_deleted
from api.json_body import StrictJSONRoute
from api.log_stream import job_log_stream
from api.routers.jobs import job_view, over_the_limit, owned_job
from api.schemas.base import RequestModel
from api.schemas.common import COMMON_ERRORS, errors
from api.schemas.jobs import JobOut
from worker.admission import ActiveJobLimitError, DatasetGoneError
from worker.job_lifecycle import JobActiveError, NoCheckpointError, delete_job, reopen_job
from worker.job_logs import read_logs
from worker.jobs import JobNotFoundError

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=StrictJSONRoute)
STREAM_ID = r"^\d{1,20}-\d{1,20}$"


class ResumeRequest(RequestModel):
    """Optional: a new total number of epochs (at least the job's)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"epochs": 20}]})

    epochs: int | None = Field(None, ge=1, le=1000)


class LogLine(BaseModel):
    id: str = Field(description="Stream id; pass the last one as ?cursor=")
    time: str
    shard: int | None = Field(None, description="None for lines about the whole job")
    level: str
    message: str


class LogPage(BaseModel):
    lines: list[LogLine]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for newer lines")


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(*COMMON_ERRORS, 404, 409),
    summary="Delete a finished job (its checkpoint, events and logs; the model if asked)",
)
def delete(
    tenant: TenantDep,
    job_id: JobId,
    jobs: JobStoreDep,
    cache: ModelCacheDep,
    redis_client: RedisDep,
    artifacts: ArtifactsDep,
    delete_model: Annotated[bool, Query(description="Delete the job's model too")] = False,
):
    owned_job(jobs, job_id, tenant)
    try:
        model_id = delete_job(jobs, job_id, delete_model, artifacts)
    except JobNotFoundError:
        raise HTTPException(404, detail=f"job_id: job {job_id} not found") from None
    except JobActiveError as error:
        raise HTTPException(409, detail=f"job_id: {error}") from None
    if model_id is not None:
        cache.evict(model_id)
        publish_deleted(redis_client, model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{job_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(*COMMON_ERRORS, 404, 409, 422, 429),
    summary="Resume a cancelled or failed job from its last checkpoint",
)
def resume(
    tenant: TenantDep,
    job_id: JobId,
    jobs: JobStoreDep,
    start: StartDep,
    artifacts: ArtifactsDep,
    settings: SettingsDep,
    body: Annotated[ResumeRequest | None, Body()] = None,
):
    """Same total epochs: the final weights equal an uninterrupted run's. Admitted against the
    tenant's active-job limit like a submission (429 with the same body)."""
    owned_job(jobs, job_id, tenant)
    epochs = body.epochs if body else None
    limit = settings.max_active_jobs_per_tenant
    try:
        record = reopen_job(jobs, job_id, epochs, artifacts, max_active=limit)
    except JobNotFoundError:
        raise HTTPException(404, detail=f"job_id: job {job_id} not found") from None
    except (JobActiveError, NoCheckpointError) as error:
        raise HTTPException(409, detail=f"job_id: {error}") from None
    except DatasetGoneError as error:
        detail = f"job_id: job {job_id} trained on data set {error.dataset_id}, deleted since"
        raise HTTPException(409, detail=detail) from None
    except ValueError as error:
        raise HTTPException(422, detail=str(error)) from None
    except ActiveJobLimitError as error:
        raise over_the_limit(error) from None
    start(job_id)
    return job_view(record)


@router.get(
    "/{job_id}/logs",
    response_model=LogPage,
    responses={
        200: {
            "description": "JSON lines, or with ?follow=true Server-Sent Events (`log` per line,"
            " `end` once the job finished)",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(*COMMON_ERRORS, 404, 422),
    },
    summary="A job's log lines (start, data set, restarts, warnings, errors), by shard",
)
def logs(
    tenant: TenantDep,
    job_id: JobId,
    jobs: JobStoreDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=STREAM_ID)] = None,
    follow: Annotated[bool, Query(description="Stream new lines until the job ends")] = False,
):
    owned_job(jobs, job_id, tenant)
    if cursor and any(int(part) >= 2**64 for part in cursor.split("-")):
        raise HTTPException(422, detail="cursor: not a log cursor of this job")
    if follow:
        return StreamingResponse(
            job_log_stream(jobs, job_id, cursor or "0", request.app.state.shutdown.is_set),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    lines = read_logs(jobs.redis, job_id, cursor or "0", count=limit)
    more = len(lines) == limit and read_logs(jobs.redis, job_id, lines[-1]["id"], count=1)
    return {"lines": lines, "next_cursor": lines[-1]["id"] if more else None}

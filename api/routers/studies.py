"""``/v1/studies``: hyperparameter studies whose trials are ordinary jobs (Optuna inside).

The API validates and stores the study; a coordinator in a worker (``worker.studies``) asks
Optuna for trials, submits their jobs, prunes and tells. PATCH and cancel are recorded on the
study and carried out by that coordinator, the only writer of trials.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from api.deps import DatasetStoreDep, RedisDep, SettingsDep, TenantDep
from api.ids import StudyId
from api.json_body import StrictJSONRoute
from api.paging import CursorQuery, fetch_page
from api.schemas.common import COMMON_ERRORS, errors
from api.schemas.studies import StudyIn, StudyList, StudyOut, StudyPatch
from api.spec_check import unprocessable
from api.sse import job_event_stream
from api.study_check import checked_study
from worker.admission import DatasetGoneError
from worker.studies.store import StudyStore

router = APIRouter(prefix="/v1/studies", tags=["studies"], route_class=StrictJSONRoute)


def public_view(record: dict) -> dict:
    return StudyOut.model_validate(record).model_dump(mode="json")


def owned_study(store: StudyStore, study_id: str, tenant: str) -> dict:
    """The tenant's study; 404 for missing and for other tenants' studies alike."""
    record = store.get(study_id)
    if record is None or record.get("tenant") != tenant:
        raise HTTPException(404, detail=f"study_id: study {study_id} not found")
    return record


def _finished(record: dict) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT,
        detail=f"study_id: study {record['id']} already {record['status']}",
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=StudyOut,
    responses=errors(*COMMON_ERRORS, 422),
    summary="Start a hyperparameter study",
)
def create(
    study: StudyIn,
    tenant: TenantDep,
    settings: SettingsDep,
    redis: RedisDep,
    datasets: DatasetStoreDep,
):
    """Validate the space against the base spec (paths, corners, a sample), then store it; the
    data sets it uses are checked again atomically with storing it (a delete in between: 422)."""
    request = checked_study(study, tenant, datasets, settings, redis)
    try:
        return public_view(StudyStore(redis).create(tenant, request))
    except DatasetGoneError as error:  # deleted since checked_study found it
        base = request["base_spec"]["dataset"].get("id")
        loc = ["body", "base_spec", "dataset", "id"] if error.dataset_id == base else None
        message = f"data set {error.dataset_id} not found"
        raise unprocessable(loc or ["body", "space", "dataset.id"], message) from None


@router.get(
    "", response_model=StudyList, responses=errors(*COMMON_ERRORS, 422), summary="List studies"
)
def list_studies(
    tenant: TenantDep,
    redis: RedisDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: CursorQuery = None,
):
    studies = StudyStore(redis)
    records, next_cursor = fetch_page(
        lambda at: studies.list(tenant, limit=limit, cursor=at), cursor, "studies"
    )
    return {"studies": [public_view(r) for r in records], "next_cursor": next_cursor}


@router.get(
    "/{study_id}",
    response_model=StudyOut,
    responses=errors(*COMMON_ERRORS, 404),
    summary="A study: status, best trial, trials",
)
def get_study(tenant: TenantDep, study_id: StudyId, redis: RedisDep):
    return public_view(owned_study(StudyStore(redis), study_id, tenant))


@router.patch(
    "/{study_id}",
    response_model=StudyOut,
    responses=errors(*COMMON_ERRORS, 404, 409, 422),
    summary="Change the budget of a running study",
)
def patch(
    tenant: TenantDep, study_id: StudyId, change: StudyPatch, settings: SettingsDep, redis: RedisDep
):
    store = StudyStore(redis)
    record = owned_study(store, study_id, tenant)
    limit = settings.max_active_jobs_per_tenant
    if change.max_parallel is not None and change.max_parallel > limit:
        raise unprocessable(
            ["body", "max_parallel"],
            f"{change.max_parallel} exceeds the tenant's active-job limit ({limit})",
        )
    updated = store.update(study_id, change.model_dump(exclude_none=True), event="patched")
    if updated is None:
        raise _finished(store.get(study_id) or record)
    return public_view(updated)


@router.post(
    "/{study_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=StudyOut,
    responses=errors(*COMMON_ERRORS, 404, 409),
    summary="Stop a study and its running trials",
)
def cancel(tenant: TenantDep, study_id: StudyId, redis: RedisDep):
    """The coordinator cancels the running trials, then the study ends ``cancelled``."""
    store = StudyStore(redis)
    record = owned_study(store, study_id, tenant)
    changes = {"cancel_requested": True, "status_reason": "cancel requested"}
    updated = store.update(study_id, changes, event="cancel")
    if updated is None:
        raise _finished(store.get(study_id) or record)
    return public_view(updated)


@router.get(
    "/{study_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `state` first, then `trial` (one trial's row"
            " changed), `patched`, `cancel` and the final `status`, then `end`.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(*COMMON_ERRORS, 404, 422),
    },
    summary="Live progress of a study (SSE)",
)
def events(
    tenant: TenantDep,  # first: without a key, any id is a 401 (as for jobs)
    study_id: StudyId,
    redis: RedisDep,
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=64, pattern=r"^\d+(-\d+)?$")] = None,
):
    store = StudyStore(redis)
    owned_study(store, study_id, tenant)
    if last_event_id and any(int(part) >= 2**64 for part in last_event_id.split("-")):
        raise HTTPException(422, detail="Last-Event-ID: not a stream id of this study")
    return StreamingResponse(
        job_event_stream(
            store, study_id, last_event_id, public_view, stop=request.app.state.shutdown.is_set
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

"""``/ui/compare?jobs=ID,ID``: up to 10 jobs' curves overlaid, final metrics, spec diff, CSV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse

from api.deps import JobStoreDep
from api.ids import is_job_id
from api.job_metrics import job_metrics, metrics_csv_rows, to_csv
from api.json_body import StrictJSONRoute
from api.ui.access import PageTenant
from api.ui.job_views import final_metrics, row_view, spec_diff
from api.ui.render import page

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictJSONRoute)
MAX_COMPARED = 10


def compared_jobs(jobs, tenant: str, ids: str) -> tuple[list[dict], list[str]]:
    """The tenant's records among ``ids`` (first ``MAX_COMPARED``), and the ids not found."""
    wanted = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
    records, missing = [], []
    for job_id in wanted[:MAX_COMPARED]:
        record = jobs.get(job_id) if is_job_id(job_id) else None
        if record is None or record.get("tenant") != tenant:
            missing.append(job_id)
        else:
            records.append(record)
    return records, missing


@router.get("/compare")
def compare_page(
    request: Request,
    tenant: PageTenant,
    jobs: JobStoreDep,
    ids: Annotated[str, Query(alias="jobs", max_length=2000)] = "",
):
    """404 when ids were given and none is the tenant's (another tenant's id alone is a 404, as
    in the API); otherwise the found jobs, and the others named as not found."""
    records, missing = compared_jobs(jobs, tenant, ids)
    too_many = len([i for i in ids.split(",") if i.strip()]) > MAX_COMPARED
    return page(
        request,
        "compare.html",
        status_code=404 if missing and not records else 200,
        tenant=tenant,
        jobs=[row_view(r) for r in records],
        finals=[final_metrics(r) for r in records],
        diff=spec_diff([r.get("spec") or {} for r in records]),
        missing=missing,
        too_many=too_many,
        ids=",".join(r["id"] for r in records),
        names={r["id"]: r.get("name") or "" for r in records},
    )


@router.get("/compare.csv")
def compare_csv(
    tenant: PageTenant,
    jobs: JobStoreDep,
    ids: Annotated[str, Query(alias="jobs", max_length=2000)] = "",
):
    """Every series of every compared job, long format (``job_id,series,step,epoch,value``);
    404 naming the first id that is not the tenant's: a script gets all it asked for, or
    nothing."""
    records, missing = compared_jobs(jobs, tenant, ids)
    if missing:
        raise HTTPException(404, detail=f"jobs: job {missing[0]} not found")
    rows = []
    for record in records:
        rows.extend(metrics_csv_rows(job_metrics(jobs.redis, record, max_points=100_000)))
    return PlainTextResponse(
        to_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="gradq-compare.csv"'},
    )

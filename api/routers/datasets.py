"""``/v1/datasets``: upload (validated before it is stored), list, read, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile, status

from api.deps import DatasetStoreDep, SettingsDep, TenantDep
from api.ids import DatasetId
from api.json_body import StrictJSONRoute
from api.paging import CursorQuery, fetch_page
from api.schemas.common import COMMON_ERRORS, errors
from api.schemas.datasets import DatasetList, DatasetOut
from worker.datasets.in_use import DatasetInUseError, delete_unless_in_use
from worker.datasets.npz_upload import DatasetTooLarge
from worker.datasets.quota import StorageQuotaExceeded
from worker.datasets.uploads import validate_upload

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], route_class=StrictJSONRoute)


def dataset_view(info: dict) -> dict:
    view = dict(info)
    view.setdefault("size_bytes", info.get("nbytes"))
    view.setdefault("created_at", info.get("created"))
    return view


def owned_dataset(store, dataset_id: str, tenant: str) -> dict:
    info = store.info(dataset_id)
    if info is None or info.get("tenant") != tenant:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"dataset_id: data set {dataset_id} not found"
        )
    return info


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    responses=errors(*COMMON_ERRORS, 422),
    summary="Upload a data set (.npz or .csv)",
)
def upload(
    tenant: TenantDep,
    settings: SettingsDep,
    datasets: DatasetStoreDep,
    file: Annotated[
        UploadFile, File(description=".npz (x_train, y_train[, x_test, y_test]) or .csv")
    ],
    label_column: Annotated[str | None, Form(max_length=200)] = None,
    task: Annotated[Literal["classification", "regression"] | None, Form()] = None,
):
    """The file is read from the request's spooled temporary file, not copied into memory: an
    .npz is checked from its headers (size, quota) before anything is decompressed."""
    try:
        uploaded = validate_upload(
            file.filename or "upload",
            file.file,
            label_column,
            task,
            settings.max_dataset_bytes,
            max_columns=settings.max_dataset_columns,
            on_planned_bytes=lambda nbytes: datasets.check_room(tenant, nbytes),
        )
        return dataset_view(datasets.put(tenant, uploaded))
    except (DatasetTooLarge, StorageQuotaExceeded) as error:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=str(error)) from None
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from None


@router.get(
    "",
    response_model=DatasetList,
    responses=errors(*COMMON_ERRORS, 422),
    summary="List uploaded data sets",
)
def list_datasets(
    tenant: TenantDep,
    datasets: DatasetStoreDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    cursor: CursorQuery = None,
):
    """Newest first, ``limit`` per page (``next_cursor`` for the next)."""
    found, next_cursor = fetch_page(lambda at: datasets.page(tenant, limit, at), cursor, "datasets")
    return {"datasets": [dataset_view(d) for d in found], "next_cursor": next_cursor}


@router.get(
    "/{dataset_id}",
    response_model=DatasetOut,
    responses=errors(*COMMON_ERRORS, 404),
    summary="A data set's description",
)
def get_dataset(tenant: TenantDep, dataset_id: DatasetId, datasets: DatasetStoreDep):
    return dataset_view(owned_dataset(datasets, dataset_id, tenant))


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(*COMMON_ERRORS, 404, 409),
    summary="Delete a data set",
)
def delete_dataset(tenant: TenantDep, dataset_id: DatasetId, datasets: DatasetStoreDep):
    """409 naming the jobs while queued, running or cancelling jobs train on it, and the studies
    while running studies use it (checked atomically with job admission and study creation: a
    job or study submitted meanwhile is either refused or named)."""
    owned_dataset(datasets, dataset_id, tenant)
    try:
        delete_unless_in_use(datasets, dataset_id)
    except DatasetInUseError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)

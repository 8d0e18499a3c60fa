"""Resource ids have one format, checked at the edge before an id can reach a Redis key.

Ids are spliced into keys (``gradq:job:{id}``), so ``job_…:alive`` used to read another key
and answer 500 while that job ran (an existence oracle across tenants). Every path id goes
through one of the dependencies below: anything that is not ``<prefix>_<16 hex>`` is a 404,
exactly like an id that does not exist or belongs to another tenant.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, HTTPException, Path, status

from api.json_response import echo
from worker.models.refs import ModelRefError, parse_model_ref

ID_HEX = r"[0-9a-f]{16}"
JOB_ID_PATTERN = rf"^job_{ID_HEX}$"
MODEL_ID_PATTERN = rf"^mdl_{ID_HEX}$"
DATASET_ID_PATTERN = rf"^ds_{ID_HEX}$"
STUDY_ID_PATTERN = rf"^study_{ID_HEX}$"


def not_found(field: str, kind: str, value: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND, detail=f"{field}: {kind} {echo(value)} not found"
    )


# a user who typed a bare name ("digits") learns the forms that work, whatever went wrong
MODEL_REF_FORMS = "a model is its id (mdl_ and 16 hex digits), NAME@ALIAS or NAME/versions/N"


def model_not_found(value: str) -> HTTPException:
    """404 for a model reference that names nothing this tenant owns, with the accepted forms."""
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        detail=f"model_id: model {echo(value)} not found ({MODEL_REF_FORMS})",
    )


def _check(value: str, pattern: re.Pattern, field: str, kind: str) -> str:
    if not pattern.fullmatch(value):
        raise not_found(field, kind, value)
    return value


_JOB, _MODEL, _DATASET, _STUDY = (
    re.compile(p) for p in (JOB_ID_PATTERN, MODEL_ID_PATTERN, DATASET_ID_PATTERN, STUDY_ID_PATTERN)
)
_DESCRIPTION = "`{}_` and 16 lowercase hex digits; any other text is a 404"


async def _job_id(job_id: Annotated[str, Path(description=_DESCRIPTION.format("job"))]) -> str:
    return _check(job_id, _JOB, "job_id", "job")


async def _model_id(
    model_id: Annotated[
        str, Path(description="`mdl_` and 16 lowercase hex digits, or NAME@ALIAS; else a 404")
    ],
) -> str:
    """A model id or ``name@alias`` (``worker.models.refs``, the one definition of a model
    reference); ``name/versions/n`` has routes of its own."""
    try:
        ref = parse_model_ref(model_id)
    except ModelRefError:
        raise model_not_found(model_id) from None
    if ref.version is not None:  # a slash never reaches this path segment; keep it that way
        raise model_not_found(model_id)
    return model_id


async def _dataset_id(
    dataset_id: Annotated[str, Path(description=_DESCRIPTION.format("ds"))],
) -> str:
    return _check(dataset_id, _DATASET, "dataset_id", "data set")


async def _study_id(
    study_id: Annotated[str, Path(description=_DESCRIPTION.format("study"))],
) -> str:
    return _check(study_id, _STUDY, "study_id", "study")


JobId = Annotated[str, Depends(_job_id)]
ModelId = Annotated[str, Depends(_model_id)]
DatasetId = Annotated[str, Depends(_dataset_id)]
StudyId = Annotated[str, Depends(_study_id)]


def is_job_id(value: str) -> bool:
    """True when ``value`` has a job id's format (pages check ids without raising)."""
    return bool(_JOB.fullmatch(value))


def is_model_id(value: str) -> bool:
    return bool(_MODEL.fullmatch(value))


def is_dataset_id(value: str) -> bool:
    return bool(_DATASET.fullmatch(value))

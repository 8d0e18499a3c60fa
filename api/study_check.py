"""Checks of a study at submit: paths, grid, objective, and job specs from points of the space.

Every path must name a value of the base spec (after its defaults are filled in). The corners of
the space (each dimension's ends, every choice of a categorical) and a random sample of points
are turned into job specs and validated exactly like ``POST /v1/jobs`` does (pydantic, data set,
``nnlib.build_model``, parameter budget, the live workers' slots). A refusal is a 422 at
``["body", "space", <path>]``.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from fastapi import HTTPException
from pydantic import ValidationError

from api.error_locations import field_path, json_loc
from api.schemas.spec import JobSpec
from api.schemas.studies import StudyIn
from api.spec_check import DataFacts, check_model, check_shards, dataset_facts, unprocessable
from worker.studies.space import (
    MAX_GRID_POINTS,
    apply_point,
    corners,
    grid_count,
    grid_size,
    missing_part,
    parse_path,
    random_points,
)

MAX_CORNERS = 32
SAMPLED_POINTS = 8
CLASSIFICATION_METRICS = ("val_accuracy", "test_accuracy")


def checked_study(study: StudyIn, tenant: str, datasets, settings, redis_client) -> dict:
    """The study request as stored (base spec with defaults), or a 422 naming what is wrong.
    ``redis_client`` counts the live workers' slots: a trial that asks for more shards than they
    have could never start, and would wait (holding its study) forever."""
    check = _Checks(tenant, datasets, settings, redis_client)
    _check_base(study.base_spec, study.objective.metric, check)
    base = study.base_spec.to_stored()
    space = {path: d.model_dump(exclude_none=True) for path, d in study.space.items()}
    for path in space:
        _check_path(base, path)
    if study.sampler == "grid":
        _check_grid(space)
    if study.max_parallel > settings.max_active_jobs_per_tenant:
        raise unprocessable(
            ["body", "max_parallel"],
            f"{study.max_parallel} exceeds the tenant's active-job limit"
            f" ({settings.max_active_jobs_per_tenant})",
        )
    metric = study.objective.metric
    if metric.startswith("test_") and study.pruner != "none":
        raise unprocessable(
            ["body", "pruner"], f"{metric} is only known when a trial ends: nothing to prune on"
        )
    points = corners(space, MAX_CORNERS, study.seed)
    points += random_points(space, SAMPLED_POINTS, study.seed)
    seen = set()
    for point in points:
        key = json.dumps(point, sort_keys=True)
        if key not in seen:
            seen.add(key)
            _check_point(base, point, metric, check)
    return {
        "name": study.name,
        "base_spec": base,
        "space": space,
        "objective": study.objective.model_dump(),
        "max_trials": study.max_trials,
        "max_parallel": study.max_parallel,
        "max_failed": study.max_failed,
        "sampler": study.sampler,
        "pruner": study.pruner,
        "seed": study.seed,
    }


class _Checks(NamedTuple):
    """What checking one trial's job spec like ``POST /v1/jobs`` needs."""

    tenant: str
    datasets: object
    settings: object
    redis_client: object

    def job(self, spec: JobSpec) -> DataFacts:
        data = dataset_facts(spec, self.tenant, self.datasets)
        check_model(spec, data, self.settings.max_parameters)
        check_shards(spec, self.redis_client, self.settings)
        return data


def _check_base(spec: JobSpec, metric: str, check: _Checks) -> None:
    """The base spec must be a job ``POST /v1/jobs`` accepts, with the objective's metric."""
    try:
        data = check.job(spec)
    except HTTPException as error:
        first = error.detail[0]
        raise unprocessable(["body", "base_spec", *first["loc"][1:]], first["msg"]) from None
    problem = _metric_problem(spec, metric, data.num_classes)
    if problem:
        raise unprocessable(["body", "objective", "metric"], problem)


def _metric_problem(spec: JobSpec, metric: str, num_classes: int | None) -> str | None:
    if metric.startswith("val_") and spec.dataset.validation_split == 0:
        return f"{metric} needs a validation split > 0 (dataset.validation_split is 0)"
    if metric in CLASSIFICATION_METRICS and num_classes is None:
        return f"{metric} needs a classification data set"
    return None


def _check_path(base: dict, path: str) -> None:
    loc = ["body", "space", path]
    try:
        parse_path(path)
    except ValueError as error:
        raise unprocessable(loc, str(error)) from None
    if path == "name":
        raise unprocessable(loc, "a trial's job name is set by the study")
    missing = missing_part(base, path)
    if missing is not None:
        raise unprocessable(loc, f"{missing!r} does not exist in base_spec (set it there first)")


def _check_grid(space: dict) -> None:
    for path, dimension in space.items():
        if grid_count(dimension) is None:
            raise unprocessable(
                ["body", "space", path],
                "the grid sampler needs a finite dimension: give a float a step",
            )
    size = grid_size(space)
    if size > MAX_GRID_POINTS:
        raise unprocessable(
            ["body", "space"], f"the grid has {size} points; at most {MAX_GRID_POINTS}"
        )


def _check_point(base: dict, point: dict, metric: str, check: _Checks) -> None:
    """Validate the job spec of one point like ``POST /v1/jobs``; 422 blaming a path."""
    trial = apply_point(base, point)
    try:
        spec = JobSpec.model_validate(trial)
        data = check.job(spec)
    except ValidationError as error:
        first = error.errors()[0]
        loc = json_loc(["body", *first["loc"]], trial, first["type"])[1:]  # the trial's own keys
        _refuse(point, loc, first["msg"])
    except HTTPException as error:
        first = error.detail[0] if isinstance(error.detail, list) else {"msg": error.detail}
        _refuse(point, list(first.get("loc", []))[1:], first["msg"])
    problem = _metric_problem(spec, metric, data.num_classes)
    if problem:
        _refuse(point, ["dataset"], problem)


def _refuse(point: dict, loc: list, message: str) -> None:
    """422 at the path of ``point`` closest to the error's location in the job spec."""

    def shared(path: str) -> int:
        parts = parse_path(path)
        n = 0
        while n < min(len(parts), len(loc)) and parts[n] == loc[n]:
            n += 1
        return n

    path = max(point, key=shared)
    if shared(path) == 0 and len(point) > 1:
        where = ["body", "space"]
    else:
        where = ["body", "space", path]
    location = field_path(loc) if loc else "spec"
    values = ", ".join(f"{p}={v!r}" for p, v in point.items())
    raise unprocessable(where, f"at {values}: the trial's job is invalid: {location}: {message}")

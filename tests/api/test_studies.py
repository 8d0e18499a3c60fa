"""``/v1/studies`` without workers: validation names the path, tenants are kept apart."""

from __future__ import annotations

import json

import pytest

from tests.harness import REPO_ROOT
from tests.studies.conftest import digits_study


def refused(client, study: dict) -> tuple[list, str]:
    """(loc, msg) of the 422 answer to ``study``."""
    response = client.post("/v1/studies", json=study)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    return detail["loc"], detail["msg"]


def test_a_valid_study_is_stored_running_with_its_base_spec_defaults_filled(alice):
    response = alice.post("/v1/studies", json=digits_study())

    assert response.status_code == 202, response.text
    study = response.json()
    assert study["id"].startswith("study_") and study["status"] == "running"
    assert study["trials"] == [] and study["best_trial"] is None
    assert study["base_spec"]["loss"] == "cross_entropy"  # a default the trials inherit
    assert alice.get(f"/v1/studies/{study['id']}").json()["id"] == study["id"]
    assert [s["id"] for s in alice.get("/v1/studies").json()["studies"]] == [study["id"]]


def test_the_fashion_mnist_example_study_is_accepted(alice, settings):
    settings.max_parameters = 1_000_000  # its widest corner: 784 * 512 + 512 * 10 weights
    study = json.loads((REPO_ROOT / "examples" / "studies" / "fashion_mnist_mlp.json").read_text())

    assert alice.post("/v1/studies", json=study).status_code == 202


@pytest.mark.parametrize(
    ("dimension", "message"),
    [
        ({"type": "float", "low": -1e308, "high": 1e308}, "high - low must be a finite number"),
        ({"type": "float", "low": 1e-3, "high": 0.1, "step": 1e-300}, "step (1e-300) is too small"),
    ],
)
def test_float_dimensions_too_wide_to_draw_from_or_count_are_refused(alice, dimension, message):
    # the first answered 500 (numpy's uniform overflowed), the second never answered
    loc, msg = refused(alice, digits_study(space={"optimizer.lr": dimension}))
    assert loc == ["body", "space", "optimizer.lr"] and message in msg


def test_an_int_dimension_of_two_billion_values_is_checked_without_listing_them(alice):
    # the corners and samples listed all 2**31 widths: gigabytes, and the API stopped answering
    study = digits_study(space={"seed": {"type": "int", "low": 0, "high": 2**31}})
    assert alice.post("/v1/studies", json=study).status_code == 202


@pytest.mark.parametrize(
    ("path", "dimension", "message"),
    [
        ("optimizer.momentum", {"type": "float", "low": 0.1, "high": 0.9}, "'momentum' does not"),
        ("model.layers[5].units", {"type": "int", "low": 8, "high": 16}, "'[5]' does not exist"),
        ("optimizer..lr", {"type": "float", "low": 0.1, "high": 0.9}, "is not a path"),
        ("name", {"type": "categorical", "choices": ["a", "b"]}, "set by the study"),
        # corners: lr 20 is above the job spec's bound of 10
        ("optimizer.lr", {"type": "float", "low": 0.1, "high": 20.0}, "optimizer.lr"),
        # the model's output must be 10 logits: a width of 12 on the last layer is refused
        ("model.layers[1].units", {"type": "int", "low": 10, "high": 12}, "cross_entropy"),
        # the parameter budget (100,000 in these tests) at the widest corner
        ("model.layers[0].units", {"type": "int", "low": 8, "high": 4096}, "budget"),
    ],
)
def test_a_space_the_job_validation_refuses_is_a_422_naming_the_path(
    alice, path, dimension, message
):
    loc, msg = refused(alice, digits_study(space={path: dimension}))

    assert loc == ["body", "space", path]
    assert message in msg


@pytest.mark.parametrize(
    ("dimension", "message"),
    [
        ({"type": "float", "low": 0.5, "high": 0.1}, "must be greater than low"),
        ({"type": "float", "low": 0.0, "high": 0.1, "log": True}, "log needs low > 0"),
        ({"type": "float", "low": 0.0, "high": 0.1, "step": 0.03}, "multiple of step"),
        ({"type": "categorical", "choices": [1, 1]}, "distinct"),
        ({"type": "uniform", "low": 0, "high": 1}, "does not match any of the expected tags"),
    ],
)
def test_a_malformed_dimension_is_a_422_under_its_path(alice, dimension, message):
    loc, msg = refused(alice, digits_study(space={"optimizer.lr": dimension}))

    assert loc[:3] == ["body", "space", "optimizer.lr"]
    assert message in msg


def test_the_grid_sampler_needs_finite_dimensions(alice):
    space = {"optimizer.lr": {"type": "float", "low": 0.001, "high": 0.1}}

    loc, msg = refused(alice, digits_study(space=space, sampler="grid"))

    assert loc == ["body", "space", "optimizer.lr"] and "step" in msg


def test_max_parallel_above_the_tenants_active_job_limit_is_refused(alice):
    loc, msg = refused(alice, digits_study(max_parallel=4))  # the limit is 3 here

    assert loc == ["body", "max_parallel"] and "limit (3)" in msg


def test_a_test_metric_cannot_be_pruned_on(alice):
    objective = {"metric": "test_accuracy", "direction": "maximize"}

    loc, msg = refused(alice, digits_study(objective=objective, pruner="median"))

    assert loc == ["body", "pruner"]


def test_a_validation_metric_needs_a_validation_split(alice):
    base = digits_study()["base_spec"] | {"dataset": {"name": "digits", "validation_split": 0}}

    loc, msg = refused(alice, digits_study(base_spec=base))

    assert loc == ["body", "objective", "metric"] and "validation split" in msg


def test_another_tenants_study_is_a_404_everywhere(alice, bob):
    study_id = alice.post("/v1/studies", json=digits_study()).json()["id"]

    assert bob.get(f"/v1/studies/{study_id}").status_code == 404
    assert bob.patch(f"/v1/studies/{study_id}", json={"max_trials": 9}).status_code == 404
    assert bob.post(f"/v1/studies/{study_id}/cancel").status_code == 404
    assert bob.get(f"/v1/studies/{study_id}/events").status_code == 404
    assert bob.get("/v1/studies").json()["studies"] == []
    assert alice.get(f"/v1/studies/{study_id}").status_code == 200


def test_patch_validates_and_a_finished_study_answers_409(alice, redis_client):
    from worker.studies.store import StudyStore

    study_id = alice.post("/v1/studies", json=digits_study()).json()["id"]

    assert alice.patch(f"/v1/studies/{study_id}", json={}).status_code == 422
    assert alice.patch(f"/v1/studies/{study_id}", json={"max_parallel": 4}).status_code == 422
    patched = alice.patch(f"/v1/studies/{study_id}", json={"max_trials": 9})
    assert patched.status_code == 200 and patched.json()["max_trials"] == 9
    cancelled = alice.post(f"/v1/studies/{study_id}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status_reason"] == "cancel requested"
    StudyStore(redis_client).update(study_id, {"status": "cancelled"})  # as its coordinator does
    assert alice.patch(f"/v1/studies/{study_id}", json={"max_trials": 3}).status_code == 409
    assert alice.post(f"/v1/studies/{study_id}/cancel").status_code == 409


def test_studies_need_a_key(anonymous):
    assert anonymous.post("/v1/studies", json=digits_study()).status_code == 401
    assert anonymous.get("/v1/studies").status_code == 401


def test_the_study_routes_are_documented_with_their_errors_and_an_example(alice):
    paths = alice.get("/openapi.json").json()["paths"]

    assert set(paths["/v1/studies"]["post"]["responses"]) >= {"202", "401", "422"}
    assert set(paths["/v1/studies/{study_id}"]["patch"]["responses"]) >= {"200", "404", "409"}
    assert "409" in paths["/v1/studies/{study_id}/cancel"]["post"]["responses"]
    assert (
        "text/event-stream"
        in paths["/v1/studies/{study_id}/events"]["get"]["responses"]["200"]["content"]
    )
    schemas = alice.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["StudyIn"]["examples"][0]["space"]["optimizer.lr"]["log"] is True

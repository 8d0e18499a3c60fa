"""A 422's ``loc`` is the path of the field in the JSON the client sent: no union tag
("builtin", "dense") or union member label ("function-after[...]") in between."""

from __future__ import annotations

import pytest

from api.error_locations import field_path
from tests.api.specs import digits_spec, with_layers
from tests.studies.conftest import digits_study


def locs(response) -> list[list]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


@pytest.mark.parametrize(
    ("spec", "loc"),
    [
        (digits_spec(dataset={"name": "digitz"}), ["body", "dataset", "name"]),
        (digits_spec(dataset={"name": "digits", "as_image": 1}), ["body", "dataset", "as_image"]),
        (digits_spec(dataset={"id": "ds_x"}), ["body", "dataset", "id"]),
        (with_layers({"type": "dense", "units": 0}), ["body", "model", "layers", 0, "units"]),
        (
            with_layers({"type": "dense", "units": 3, "colour": 1}),
            ["body", "model", "layers", 0, "colour"],
        ),
        (with_layers({"type": "conv2d"}), ["body", "model", "layers", 0, "filters"]),  # missing
        (
            digits_spec(loss={"type": "cross_entropy", "label_smoothing": 2}),
            ["body", "loss", "label_smoothing"],
        ),
        (digits_spec(loss="hinge"), ["body", "loss"]),
    ],
    ids=[
        "set name",
        "set option",
        "set id",
        "units",
        "extra field",
        "missing",
        "loss option",
        "loss",
    ],
)
def test_the_location_is_the_path_in_the_sent_spec(alice, spec, loc):
    assert loc in locs(alice.post("/v1/jobs", json=spec))


def test_every_location_of_a_refused_spec_exists_in_it(alice):
    layers = [{"type": "conv2d", "filters": 0}, {"type": "dense", "units": 3, "colour": 1}]
    spec = digits_spec(
        dataset={"name": "digitz"},
        loss={"type": "mse", "label_smoothing": 0.5},
        model={"layers": layers},
    )
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]

    assert len(errors) >= 4
    for error in errors:
        parent = {"body": spec}
        for part in error["loc"][:-1]:
            parent = parent[part]
        assert error["loc"][-1] in parent or error["type"] == "missing", error


def test_locations_outside_the_body_are_unchanged(alice):
    assert locs(alice.get("/v1/jobs", params={"limit": 0})) == [["query", "limit"]]


def test_a_study_trial_error_names_the_field_as_the_spec_writes_it(alice):
    space = {"dataset.name": {"type": "categorical", "choices": ["digits", "digitz"]}}
    response = alice.post("/v1/studies", json=digits_study(space=space))

    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "space", "dataset.name"]
    assert detail["msg"] == (
        "at dataset.name='digitz': the trial's job is invalid: dataset.name: "
        "Input should be 'digits', 'mnist', 'fashion-mnist', 'blobs' or 'spirals'"
    )


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (["body", "model", "layers", 2, "units"], "model.layers[2].units"),
        (["body", "inputs", 0, 3], "inputs[0][3]"),
        (["body"], "body"),
        (["query", "limit"], "query.limit"),
    ],
)
def test_field_path_writes_indices_in_brackets(loc, path):
    assert field_path(loc) == path

"""Numbers in JSON: NaN, Infinity and overflowing literals are 422s naming the field, and no
response body ever holds a non-finite number (issue 10)."""

from __future__ import annotations

import copy
import json

import pytest

from tests.api.models_fixture import store_digits_model
from tests.api.specs import digits_spec
from tests.api.strict import PLACEHOLDER, parse_strictly, with_literal
from worker.jobs import JobStore

JSON = {"Content-Type": "application/json"}
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]


def spec_with(path: tuple, extra: dict | None = None) -> dict:
    """A valid spec (updated by ``extra``) whose field at ``path`` holds the placeholder."""
    spec = copy.deepcopy(digits_spec(**(extra or {})))
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = PLACEHOLDER
    return spec


def names(loc: list, path: tuple) -> bool:
    """``loc`` is the path of the field in the body (no union tag such as "builtin" between)."""
    return loc == ["body", *path]


FIELDS = [
    (("optimizer", "lr"), None),
    (("optimizer", "betas", 0), {"optimizer": {"type": "adam", "lr": 0.01, "betas": [0.9, 0.99]}}),
    (("optimizer", "clip_norm"), {"optimizer": {"type": "adam", "lr": 0.01, "clip_norm": 1.0}}),
    (("early_stopping", "min_delta"), {"early_stopping": {"patience": 2, "min_delta": 0.0}}),
    (("dataset", "validation_split"), None),
    (("loss", "label_smoothing"), {"loss": {"type": "cross_entropy", "label_smoothing": 0.1}}),
    (("schedule", "min_lr"), {"schedule": {"type": "cosine", "min_lr": 0.0}}),
    (("epochs",), None),
    (("name",), None),
]


@pytest.mark.parametrize("literal", NON_FINITE)
@pytest.mark.parametrize(("path", "extra"), FIELDS, ids=[".".join(map(str, p)) for p, _ in FIELDS])
def test_non_finite_numbers_in_a_job_spec_are_422_naming_the_field(alice, path, extra, literal):
    body = with_literal(spec_with(path, extra), literal)
    response = alice.post("/v1/jobs", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    errors = parse_strictly(response.text)["detail"]
    assert any(names(e["loc"], path) for e in errors), errors


def test_infinite_min_delta_is_no_longer_stored_as_null(alice):
    body = with_literal(spec_with(("early_stopping", "min_delta"), FIELDS[3][1]), "Infinity")
    assert alice.post("/v1/jobs", content=body, headers=JSON).status_code == 422
    assert alice.get("/v1/jobs").json()["jobs"] == []


@pytest.fixture
def predict_url(redis_client) -> str:
    return f"/v1/models/{store_digits_model(redis_client, 'alice')['id']}/predict"


@pytest.mark.parametrize(
    ("literal", "shown"),
    [("1e39", "1e+39"), ("-1e39", "-1e+39"), ("1e999", "Infinity"), ("NaN", "NaN")],
)
def test_predict_values_must_fit_float32(alice, predict_url, literal, shown):
    body = with_literal({"inputs": [PLACEHOLDER] + [0] * 63}, literal)
    response = alice.post(predict_url, content=body, headers=JSON)
    assert response.status_code == 422
    detail = parse_strictly(response.text)["detail"]
    assert detail.startswith(f"inputs[0]: {shown} ") and "float32" in detail


def test_predict_integers_beyond_float64_are_422(alice, predict_url):
    body = b'{"inputs": [' + b"9" * 400 + b"," + b"0," * 62 + b"0]}"
    response = alice.post(predict_url, content=body, headers=JSON)
    assert response.status_code == 422 and "float32" in response.json()["detail"]


def test_predict_outputs_that_overflow_are_422_not_nan(alice, predict_url):
    # 3e38 fits float32, but the first dense layer's sum of such values does not
    response = alice.post(predict_url, json={"inputs": [3e38] * 64})
    assert response.status_code == 422
    assert parse_strictly(response.text)["detail"].startswith("inputs[0]: the model's outputs")


def test_stored_non_finite_numbers_are_answered_as_null(alice, redis_client):
    store = JobStore(redis_client)
    record = store.create(digits_spec(), "alice")
    store.transition(
        record["id"],
        "failed",
        "diverged",
        changes={"train_loss": float("nan"), "metrics": {"test_loss": float("inf")}},
    )
    job = parse_strictly(alice.get(f"/v1/jobs/{record['id']}").text)
    assert job["train_loss"] is None and job["metrics"]["test_loss"] is None
    listed = parse_strictly(alice.get("/v1/jobs").text)["jobs"][0]
    assert listed["train_loss"] is None
    with alice.stream("GET", f"/v1/jobs/{record['id']}/events") as events:
        text = "".join(events.iter_text())
    data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert data and all(parse_strictly(item) is not None for item in data)
    assert "NaN" not in text and "Infinity" not in text


def test_refused_values_are_echoed_as_strict_json(alice):
    body = with_literal(spec_with(("optimizer", "lr")), "NaN")
    response = alice.post("/v1/jobs", content=body, headers=JSON)
    error = parse_strictly(response.text)["detail"][0]
    assert error["loc"] == ["body", "optimizer", "lr"] and error["input"] == "nan"
    assert json.loads(response.text) == parse_strictly(response.text)

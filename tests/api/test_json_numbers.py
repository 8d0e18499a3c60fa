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


@pytest.mark.parametrize("literal", ["true", "false", "null"])
def test_json_literals_among_predict_inputs_are_422_not_read_as_numbers(
    alice, predict_url, literal
):
    # NumPy read [true, 0, ...] as [1, 0, ...] (a 200 for a sample nobody sent) and null as NaN
    alice.post(predict_url, json={"inputs": [0] * 64})  # cached: the fast path sees it first
    body = with_literal({"inputs": [0] * 10 + [PLACEHOLDER] + [0] * 53}, literal)
    response = alice.post(predict_url, content=body, headers=JSON)
    assert response.status_code == 422
    # named by its index, as a NaN is (the trial: "inputs: null is not a number" said not where)
    assert parse_strictly(response.text)["detail"] == f"inputs[10]: {literal} is not a number"


def test_a_null_deep_in_a_batch_is_named_by_its_index_path(alice, predict_url):
    inputs = [[0] * 64, [0] * 64]
    inputs[1][37] = None
    response = alice.post(predict_url, json={"inputs": inputs})
    assert response.status_code == 422
    assert response.json()["detail"] == "inputs[1][37]: null is not a number"


@pytest.mark.parametrize(
    ("datatype", "literal", "refused"),
    [
        ("INT8", "300", "300 is not a value of INT8"),
        ("UINT8", "-1", "-1 is not a value of UINT8"),
        ("INT32", "1.5", "1.5 is not a value of INT32"),
        ("INT64", "1e20", "1e+20 is not a value of INT64"),
        ("FP16", "70000", "70000 does not fit FP16"),
        ("FP32", "true", "true is not a number"),
        ("FP32", "null", "null is not a number"),
        ("INT8", "16", None),
        ("FP16", "1000.5", None),
    ],
)
def test_v2_json_data_must_be_values_of_the_declared_datatype(
    alice, predict_url, datatype, literal, refused
):
    # the data used to be converted to float whatever the datatype said, and answered with 200
    url = predict_url.replace("/v1/", "/v2/").replace("/predict", "/infer")
    tensor = {"name": "input", "shape": [1, 64], "datatype": datatype}
    body = with_literal({"inputs": [tensor | {"data": [PLACEHOLDER] + [0] * 63}]}, literal)
    response = alice.post(url, content=body, headers=JSON)
    if refused is None:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400
        assert parse_strictly(response.text)["error"] == f"inputs[0].data: {refused}"


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

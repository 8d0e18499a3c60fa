"""Request bodies: exact JSON types, bounded nesting and work, short echoes, parse errors as
422 (issue 10)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.json_body import MAX_JSON_DEPTH, MAX_JSON_VALUES, json_depth, too_many_values
from tests.api.conftest import KEY_A
from tests.api.models_fixture import store_digits_model
from tests.api.specs import digits_spec, with_layers
from tests.api.strict import parse_strictly

JSON = {"Content-Type": "application/json"}
AS_IMAGE = ["body", "dataset", "as_image"]


def locs(response) -> list[list]:
    return [error["loc"] for error in parse_strictly(response.text)["detail"]]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"overlap": 0}, ["body", "overlap"]),
        ({"overlap": "true"}, ["body", "overlap"]),
        ({"epochs": True}, ["body", "epochs"]),
        ({"epochs": 2.0}, ["body", "epochs"]),
        ({"epochs": "2"}, ["body", "epochs"]),
        ({"seed": 1.5}, ["body", "seed"]),
        ({"dataset": {"name": "digits", "as_image": 1}}, AS_IMAGE),
        ({"optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": 1}}, None),
        ({"early_stopping": {"restore_best": "yes"}}, None),
    ],
)
def test_booleans_and_integers_are_exact_json_types(alice, change, loc):
    response = alice.post("/v1/jobs", json=digits_spec(**change))
    assert response.status_code == 422
    if loc:
        assert loc in locs(response)


def test_a_bool_in_a_layer_must_be_a_bool(alice):
    spec = with_layers({"type": "flatten"}, {"type": "dense", "units": 10, "use_bias": 0})
    assert alice.post("/v1/jobs", json=spec).status_code == 422


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"name": "x",}', b"\xff\xfe{}", b"[" * 5000 + b"]" * 5000, b"9" * 5000],
    ids=["syntax", "trailing comma", "not utf-8", "5000 deep", "5000-digit integer"],
)
def test_bodies_that_do_not_parse_are_422_naming_the_body(alice, body):
    response = alice.post("/v1/jobs", content=body, headers=JSON)
    assert response.status_code == 422
    assert locs(response) == [["body"]]


def test_nesting_is_bounded_in_every_json_body(alice, redis_client):
    deep = b'{"inputs": ' + b"[" * 3000 + b"1" + b"]" * 3000 + b"}"
    model = store_digits_model(redis_client, "alice")["id"]
    response = alice.post(f"/v1/models/{model}/predict", content=deep, headers=JSON)
    assert response.status_code == 422
    assert response.json()["detail"] == f"body: nested deeper than {MAX_JSON_DEPTH} levels"
    spec = json.dumps(digits_spec(name="x")).replace('"x"', "[" * 40 + "]" * 40).encode()
    assert alice.post("/v1/jobs", content=spec, headers=JSON).status_code == 422


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a": "[[[[{{{{", "b": [[1], {"c": "]]]\\"[["}]}') == 3
    assert json_depth(b'["\\\\", [["\\\\\\"]"]]]') == 3  # even and odd backslash runs
    assert json_depth(b"[]") == 1 and json_depth(b"7") == 0 and json_depth(b"") == 0


def test_values_are_counted_by_their_commas():
    assert too_many_values(b"[1, 2, 3]", 2) and not too_many_values(b"[1, 2, 3]", 3)


def test_a_spec_with_more_values_than_any_spec_needs_is_refused_before_parsing(roomy):
    spec = with_layers(*[{"type": "dense", "units": 1}] * 10_000)  # 20k values
    response = roomy.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert locs(response) == [["body"]]
    assert f"more than {MAX_JSON_VALUES} values" in response.text


def test_too_many_layers_are_refused_by_count_naming_the_field(alice):
    response = alice.post("/v1/jobs", json=with_layers(*[{"type": "relu"}] * 1000))
    error = parse_strictly(response.text)["detail"][0]
    assert response.status_code == 422 and error["loc"] == ["body", "model", "layers"]
    assert "1000 layers; at most 64" in error["msg"] and len(response.content) < 2000


@pytest.mark.parametrize("upload", ["dataset", "image"])
def test_malformed_multipart_is_422_not_400(alice, redis_client, upload):
    model = store_digits_model(redis_client, "alice")["id"]
    path = "/v1/datasets" if upload == "dataset" else f"/v1/models/{model}/predict"
    headers = {"Content-Type": "multipart/form-data"}  # no boundary
    response = alice.post(path, content=b"garbage", headers=headers)
    assert response.status_code == 422
    assert "body" in json.dumps(parse_strictly(response.text)["detail"])


@pytest.fixture
def roomy(settings):
    """An app taking 20 MB JSON bodies, as alice."""
    app = create_app(settings.model_copy(update={"max_request_bytes": 20 * 1024 * 1024}))
    with TestClient(app, headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        yield client


@pytest.mark.slow
def test_a_16_mb_spec_of_a_million_layers_is_refused_unparsed_with_a_short_answer(roomy):
    spec = digits_spec(model={"layers": [{"type": "relu"}] * 1_000_000})
    body = json.dumps(spec, separators=(",", ":")).encode()
    assert len(body) > 16_000_000
    response = roomy.post("/v1/jobs", content=body, headers=JSON)
    assert response.status_code == 422
    error = parse_strictly(response.text)["detail"][0]
    assert error["loc"] == ["body"] and f"more than {MAX_JSON_VALUES} values" in error["msg"]
    assert len(response.content) < 2000  # the 16 MB are not echoed back


def test_echoed_input_is_truncated(alice):
    response = alice.post("/v1/jobs", json=digits_spec(name="n" * 30_000))
    assert response.status_code == 422
    assert len(response.content) < 2000
    assert parse_strictly(response.text)["detail"][0]["input"].endswith("...")


def test_a_predict_body_with_more_numbers_than_the_batch_limit_allows_is_refused(
    alice, redis_client
):
    model = store_digits_model(redis_client, "alice")["id"]  # the fixture allows 8 samples
    response = alice.post(f"/v1/models/{model}/predict", json={"inputs": [0.0] * 2000})
    assert response.status_code == 422
    assert "(at most 8 samples of 64 values)" in response.json()["detail"]

"""Text a client sends must be Unicode: a lone UTF-16 surrogate (the JSON escape ``"\\ud800"``
or its UTF-8 bytes) in any string of any JSON body is a 422 naming the field (issue 10's kind
"no input gets a 5xx"). It used to pass validation or be echoed in a 422, and the answer then
failed to encode: a 500 on every route with a JSON body, and a stored model description broke
the tenant's model listing for good."""

from __future__ import annotations

import json

import pytest

from api.json_response import dumps
from tests.api.models_fixture import store_digits_model
from tests.api.specs import digits_spec
from tests.api.strict import parse_strictly
from worker.jobs import JobStore

JSON = {"Content-Type": "application/json"}
LONE = "__lone_surrogate__"  # replaced by the JSON escape \ud800 after encoding


def body(document) -> bytes:
    return json.dumps(document).replace(LONE, "\\ud800").encode()


@pytest.fixture
def ids(alice, redis_client) -> dict:
    model = store_digits_model(redis_client, "alice")
    job = JobStore(redis_client).create(digits_spec(), "alice")
    return {"model": model["id"], "name": model["name"], "job": job["id"]}


ROUTES = [
    ("POST", "/v1/jobs", digits_spec(name=LONE), "name"),
    ("POST", "/v1/jobs", digits_spec(model={"layers": [{LONE: 1}]}), "model.layers[0].<key>"),
    ("POST", "/v1/jobs/{job}/resume", {"epochs": LONE}, "epochs"),
    ("PATCH", "/v1/models/{model}", {"description": LONE}, "description"),
    ("PATCH", "/v1/models/{model}", {"tags": {"a": LONE}}, "tags.a"),
    ("PUT", "/v1/registry/{name}/aliases/best", {"version": LONE}, "version"),
    ("POST", "/v1/models/{model}/predict", {"inputs": [LONE]}, "inputs[0]"),
    ("POST", "/v1/studies", {"name": LONE}, "name"),
    ("POST", "/v2/models/{model}/infer", {"id": LONE, "inputs": []}, "id"),
]


@pytest.mark.parametrize(("method", "path", "document", "field"), ROUTES)
def test_a_lone_surrogate_in_any_json_body_is_refused_naming_its_field(
    alice, ids, method, path, document, field
):
    response = alice.request(method, path.format(**ids), content=body(document), headers=JSON)
    assert response.status_code in (400, 422), response.text  # the v2 protocol answers 400
    assert f"{field}: a lone UTF-16 surrogate" in response.text
    parse_strictly(response.content.decode("utf-8"))


def test_a_body_that_is_a_lone_surrogate_is_named_once(alice):
    response = alice.post("/v1/jobs", content=b'"\\ud800"', headers=JSON)
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "body: a lone UTF-16 surrogate escape is not Unicode text"
    )


def test_the_utf8_bytes_of_a_surrogate_are_not_utf8_and_nothing_is_stored(alice, ids):
    raw = b'{"description": "\xed\xa0\x80"}'
    response = alice.patch(f"/v1/models/{ids['model']}", content=raw, headers=JSON)
    assert response.status_code == 422
    assert "not valid UTF-8" in response.text
    assert alice.get(f"/v1/models/{ids['model']}").json()["description"] == ""
    assert alice.get("/v1/models").status_code == 200


def test_valid_pairs_and_escaped_backslashes_are_ordinary_text(alice, ids):
    text = b'{"description": "\\ud83d\\ude00 and \\\\ud800"}'
    response = alice.patch(f"/v1/models/{ids['model']}", content=text, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "\U0001f600 and \\ud800"


def test_a_surrogate_stored_before_the_check_is_answered_as_a_replacement_character():
    encoded = dumps({"description": "a\ud800b", "loss": float("nan")})
    assert parse_strictly(encoded.decode("utf-8")) == {"description": "a\ufffdb", "loss": None}

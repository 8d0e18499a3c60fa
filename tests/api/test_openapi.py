"""The OpenAPI document, fuzzed with schemathesis: no 5xx, every answer documented, valid and
strict JSON; bodies are generated both to fit the schema and (negative mode) to break it.
test_hostile_json.py adds what no schema generates: NaN, 1e999, deep nesting, huge arrays."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import KEY_A
from tests.api.strict import parse_strictly


@schemathesis.check
def strict_json_answer(ctx, response, case) -> None:
    """A JSON answer parses with NaN and Infinity refused (what browsers and Go accept)."""
    content_type = response.headers.get("content-type") or ""
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if "json" in content_type:
        parse_strictly(response.content)


JSON_BODIES = {("post", "/v1/jobs"), ("post", "/v1/models/{model_id}/predict")}
CHECKS = [
    not_a_server_error,
    strict_json_answer,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_openapi_documents_every_route_with_errors_and_examples(alice):
    document = alice.get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths) >= {
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/events",
        "/v1/models",
        "/v1/models/{model_id}",
        "/v1/models/{model_id}/weights",
        "/v1/models/{model_id}/predict",
        "/v1/datasets",
        "/v1/datasets/{dataset_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    assert set(paths["/v1/jobs"]["post"]["responses"]) >= {"202", "401", "413", "422", "429"}
    assert "409" in paths["/v1/jobs/{job_id}/cancel"]["post"]["responses"]
    assert "409" in paths["/v1/datasets/{dataset_id}"]["delete"]["responses"]
    predict_body = paths["/v1/models/{model_id}/predict"]["post"]["requestBody"]["content"]
    assert set(predict_body) == {"application/json", "multipart/form-data"}
    assert document["components"]["schemas"]["JobSpec"]["examples"]
    assert alice.get("/docs").status_code == 200


def fuzzer(operation, checks, examples: int, mode=GenerationMode.POSITIVE):
    """A hypothesis test sending generated requests for ``operation`` as tenant alice."""

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=examples,
        derandomize=True,  # the same examples on every run: CI failures reproduce
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {KEY_A}"}, checks=checks)

    return fuzz


@pytest.mark.filterwarnings("ignore")
def test_fuzzed_requests_get_no_5xx_and_documented_answers(app, alice):
    """A bounded number of generated requests per operation."""
    # no 429s: let every generated job spec reach the shape checks
    app.state.settings = app.state.settings.model_copy(update={"max_active_jobs_per_tenant": 10**6})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 16
    for operation in operations:
        # /readyz is a documented 503 here: no worker runs in this test
        checks = CHECKS[1:] if operation.path == "/readyz" else CHECKS
        # job specs reach nnlib.build_model: give that path more examples
        examples = 40 if (operation.method, operation.path) == ("post", "/v1/jobs") else 8
        fuzzer(operation, checks, examples)()
        if (operation.method, operation.path) in JSON_BODIES:  # wrong types, bounds, fields
            fuzzer(operation, checks, examples, GenerationMode.NEGATIVE)()

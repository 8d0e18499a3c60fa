"""The OpenAPI document declares the API-key scheme, so Swagger UI (/docs) can authorise calls;
declaring it changed no answer (the 401 bodies and challenge are the same as before)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from worker.config import Settings


def test_the_schema_declares_the_bearer_key_scheme(alice):
    schemes = alice.get("/openapi.json").json()["components"]["securitySchemes"]

    assert schemes["APIKey"]["type"] == "http"
    assert schemes["APIKey"]["scheme"] == "bearer"


def test_exactly_the_keyed_operations_declare_the_scheme(alice):
    """Keyed: every /v1 and /v2/models operation (test_auth_limits.py checks each answers 401
    without a key); health, readiness, metrics and the /v2 server metadata need none and declare
    none."""
    paths = alice.get("/openapi.json").json()["paths"]
    secured, open_ = set(), set()
    for path, item in paths.items():
        for method, operation in item.items():
            target = secured if operation.get("security") == [{"APIKey": []}] else open_
            target.add(f"{method.upper()} {path}")

    assert all(op.split(" ", 1)[1].startswith(("/v1/", "/v2/models")) for op in secured)
    assert open_ == {
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /v2",
        "GET /v2/health/live",
        "GET /v2/health/ready",
    }


def test_docs_page_still_loads_the_local_swagger_ui(anonymous):
    response = anonymous.get("/docs")

    assert response.status_code == 200
    assert "/ui/static/vendor/swagger-ui/swagger-ui-bundle.js" in response.text
    assert "'/openapi.json'" in response.text or '"/openapi.json"' in response.text


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Authorization: missing 'Bearer <API key>' header"),
        ("Basic abc", "Authorization: missing 'Bearer <API key>' header"),
        ("Bearer ", "Authorization: missing 'Bearer <API key>' header"),
        ("Bearer nope", "Authorization: unknown API key"),
    ],
)
def test_refusals_keep_their_exact_body_and_challenge(app, header, detail):
    headers = {"Authorization": header} if header is not None else {}
    with TestClient(app, headers=headers) as client:
        response = client.get("/v1/models")

    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_key_with_spaces_around_it_is_still_the_key(app):
    with TestClient(app, headers={"Authorization": "bearer   key-alice-0123456789  "}) as client:
        assert client.get("/v1/models").status_code == 200


def test_without_keys_no_header_is_needed_even_though_the_scheme_is_declared(redis_url):
    with TestClient(create_app(Settings(redis_url=redis_url))) as client:
        assert client.get("/v1/models").status_code == 200
        assert client.get("/v1/models", headers={"Authorization": "Bearer x"}).status_code == 200

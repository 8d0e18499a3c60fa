"""Every list route refuses, the same way, a cursor it did not hand out (api/paging.py)."""

from __future__ import annotations

import pytest

from tests.api.models_fixture import save_trained, trained_digits_model
from tests.api.specs import digits_spec

LISTS = [
    "/v1/jobs",
    "/v1/models",
    "/v1/datasets",
    "/v1/studies",
    "/v1/registry",
    "/v1/registry/mlp",
]
# garbage, a bare store position (what the routes took before), and a well-formed wrapping of
# "x" with a tag of no list
FOREIGN = ["zzz", "1", "job_0000000000000000", "eA.000000000000"]


@pytest.fixture
def alice_with_a_model(alice, redis_client):
    # /v1/registry/{name} answers 404 for an unknown name before it looks at the cursor
    save_trained(redis_client, "alice", trained_digits_model(), "job_test", "mlp")
    return alice


@pytest.mark.parametrize("cursor", FOREIGN)
@pytest.mark.parametrize("route", LISTS)
def test_a_cursor_the_list_never_gave_is_a_422_naming_cursor(alice_with_a_model, route, cursor):
    response = alice_with_a_model.get(route, params={"limit": 1, "cursor": cursor})

    assert response.status_code == 422, response.text
    assert response.json() == {"detail": f"cursor: {cursor!r} is not a cursor from this list"}


@pytest.mark.parametrize("route", [r for r in LISTS if r != "/v1/jobs"])
def test_a_cursor_from_the_jobs_list_is_refused_by_every_other_list(alice_with_a_model, route):
    for _ in range(2):
        assert alice_with_a_model.post("/v1/jobs", json=digits_spec()).status_code == 202
    issued = alice_with_a_model.get("/v1/jobs", params={"limit": 1}).json()["next_cursor"]
    assert alice_with_a_model.get("/v1/jobs", params={"cursor": issued}).status_code == 200

    response = alice_with_a_model.get(route, params={"cursor": issued})

    assert response.status_code == 422 and response.json()["detail"].startswith("cursor: ")


def test_a_version_cursor_of_one_name_is_refused_for_another(alice_with_a_model, redis_client):
    for name in ("mlp", "cnn", "cnn"):
        save_trained(redis_client, "alice", trained_digits_model(), "job_test", name)
    issued = alice_with_a_model.get("/v1/registry/mlp", params={"limit": 1}).json()["next_cursor"]
    rest = alice_with_a_model.get("/v1/registry/mlp", params={"cursor": issued}).json()
    assert [v["version"] for v in rest["versions"]] == [1]

    assert alice_with_a_model.get("/v1/registry/cnn", params={"cursor": issued}).status_code == 422

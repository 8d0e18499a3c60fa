"""The model registry: versions per tenant and name, aliases, tags, predict by every reference."""

from __future__ import annotations

import pytest

from tests.api.models_fixture import raw_digits, store_digits_model


@pytest.fixture
def two_versions(redis_client) -> list[dict]:
    """digits-mlp versions 1 and 2 of tenant alice."""
    return [store_digits_model(redis_client, "alice") for _ in range(2)]


def test_versions_count_up_per_tenant_and_name(redis_client, two_versions):
    bobs = store_digits_model(redis_client, "bob")
    assert [m["version"] for m in two_versions] == [1, 2]
    assert bobs["version"] == 1  # another tenant's counter
    assert all(m["name"] == "digits-mlp" for m in [*two_versions, bobs])


def test_registry_lists_versions_newest_first_with_their_aliases(alice, two_versions):
    first, second = two_versions
    assert alice.put("/v1/registry/digits-mlp/aliases/production", json={"version": 1}).json() == {
        "name": "digits-mlp",
        "alias": "production",
        "version": 1,
    }
    listing = alice.get("/v1/registry/digits-mlp").json()
    assert [v["version"] for v in listing["versions"]] == [2, 1]
    assert [v["id"] for v in listing["versions"]] == [second["id"], first["id"]]
    assert listing["aliases"] == {"production": 1}
    assert listing["versions"][1]["aliases"] == ["production"]
    assert listing["versions"][1]["signature"]["inputs"] == {"shape": [64], "dtype": "float32"}
    page = alice.get("/v1/registry/digits-mlp?limit=1").json()
    rest = alice.get(f"/v1/registry/digits-mlp?limit=1&cursor={page['next_cursor']}").json()
    assert [v["version"] for v in page["versions"] + rest["versions"]] == [2, 1]
    assert rest["next_cursor"] is None


def test_predict_by_id_alias_and_version_gives_the_addressed_model(alice, two_versions):
    raw, _ = raw_digits(2)
    first, second = two_versions
    alice.put("/v1/registry/digits-mlp/aliases/production", json={"version": 2})
    by_id = alice.post(f"/v1/models/{second['id']}/predict", json={"inputs": raw.tolist()})
    by_alias = alice.post("/v1/models/digits-mlp@production/predict", json={"inputs": raw.tolist()})
    by_version = alice.post(
        "/v1/models/digits-mlp/versions/2/predict", json={"inputs": raw.tolist()}
    )
    assert by_id.status_code == by_alias.status_code == by_version.status_code == 200
    assert by_id.json() == by_alias.json() == by_version.json()
    assert alice.get("/v1/models/digits-mlp@production").json()["id"] == second["id"]
    assert alice.get("/v1/models/digits-mlp/versions/1").json()["id"] == first["id"]


def test_moving_an_alias_changes_what_the_next_request_reaches(alice, app, two_versions):
    first, second = two_versions
    url = "/v1/models/digits-mlp@production"
    alice.put("/v1/registry/digits-mlp/aliases/production", json={"version": 1})
    alice.post(url + "/predict", json={"inputs": [[0.0] * 64]})
    assert alice.get(url).json()["id"] == first["id"] and first["id"] in app.state.model_cache
    alice.put("/v1/registry/digits-mlp/aliases/production", json={"version": 2})
    assert alice.post(url + "/predict", json={"inputs": [[0.0] * 64]}).status_code == 200
    assert second["id"] in app.state.model_cache  # loaded because the alias now points there
    assert alice.delete("/v1/registry/digits-mlp/aliases/production").status_code == 204
    assert alice.post(url + "/predict", json={"inputs": [[0.0] * 64]}).status_code == 404
    assert alice.delete("/v1/registry/digits-mlp/aliases/production").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "names"),
    [
        ("put", "/v1/registry/digits-mlp/aliases/prod", {"version": 9}, 404, "versions/9"),
        ("put", "/v1/registry/digits-mlp/aliases/9lives", {"version": 1}, 422, "alias"),
        ("put", "/v1/registry/digits-mlp/aliases/prod", {"version": 0}, 422, "version"),
        ("get", "/v1/models/digits-mlp@nothing", None, 404, "digits-mlp@nothing"),
        ("get", "/v1/models/digits-mlp/versions/7", None, 404, "digits-mlp/versions/7"),
        ("get", "/v1/models/not-a-ref", None, 404, "not-a-ref"),  # malformed: as unknown
        ("get", "/v1/models/digits-mlp/versions/0", None, 404, "digits-mlp/versions/0"),
        ("get", "/v1/registry/unknown-name", None, 404, "unknown-name"),
    ],
)
def test_bad_and_unknown_references_are_named_in_the_error(
    alice, two_versions, method, path, body, code, names
):
    response = getattr(alice, method)(path, **({"json": body} if body is not None else {}))
    assert response.status_code == code
    assert names in str(response.json()["detail"])


def test_deleting_a_version_removes_its_aliases_but_never_reuses_its_number(
    alice, redis_client, two_versions
):
    alice.put("/v1/registry/digits-mlp/aliases/production", json={"version": 2})
    assert alice.delete("/v1/models/digits-mlp/versions/2").status_code == 204
    listing = alice.get("/v1/registry/digits-mlp").json()
    assert [v["version"] for v in listing["versions"]] == [1] and listing["aliases"] == {}
    assert store_digits_model(redis_client, "alice")["version"] == 3


def test_tags_and_description_are_replaced_by_patch(alice, two_versions):
    url = "/v1/models/digits-mlp/versions/1"
    patched = alice.patch(url, json={"tags": {"team": "vision"}, "description": "baseline"})
    assert patched.status_code == 200
    assert alice.get(url).json()["tags"] == {"team": "vision"}
    alice.patch(url, json={"description": "the first one"})
    model = alice.get(f"/v1/models/{two_versions[0]['id']}").json()
    assert model["tags"] == {"team": "vision"} and model["description"] == "the first one"
    bad = alice.patch(url, json={"tags": {"bad key!": "x"}})
    assert bad.status_code == 422 and "tags" in str(bad.json()["detail"])


def test_model_list_pages_with_a_cursor(alice, redis_client):
    ids = [store_digits_model(redis_client, "alice")["id"] for _ in range(3)]
    first = alice.get("/v1/models?limit=2").json()
    second = alice.get(f"/v1/models?limit=2&cursor={first['next_cursor']}").json()
    assert [m["id"] for m in first["models"] + second["models"]] == ids[::-1]
    assert second["next_cursor"] is None
    for bad in ("nonsense", "nan", "-inf"):
        assert alice.get(f"/v1/models?cursor={bad}").status_code == 422


def test_registry_routes_keep_tenants_apart(alice, bob, two_versions):
    alice.put("/v1/registry/digits-mlp/aliases/production", json={"version": 1})
    assert bob.get("/v1/registry/digits-mlp").status_code == 404
    assert bob.get("/v1/models/digits-mlp@production").status_code == 404
    assert bob.get("/v1/models/digits-mlp/versions/1").status_code == 404
    assert (
        bob.post(
            "/v1/models/digits-mlp/versions/1/predict", json={"inputs": [[0.0] * 64]}
        ).status_code
        == 404
    )
    assert bob.patch("/v1/models/digits-mlp/versions/1", json={"tags": {}}).status_code == 404
    put = bob.put("/v1/registry/digits-mlp/aliases/production", json={"version": 1})
    assert put.status_code == 404
    assert bob.delete("/v1/registry/digits-mlp/aliases/production").status_code == 404
    assert alice.get("/v1/registry/digits-mlp").json()["aliases"] == {"production": 1}

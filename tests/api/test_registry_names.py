"""``GET /v1/registry``: the tenant's model names, most recently registered first, paged."""

from __future__ import annotations

import pytest

from tests.api.models_fixture import save_trained, trained_digits_model
from worker.models import registry as registry_module


def store(redis_client, tenant: str, name: str) -> dict:
    return save_trained(redis_client, tenant, trained_digits_model(), "job_test", name)


def all_names(client, limit: int) -> list[str]:
    """Every name, following ``next_cursor`` page by page."""
    seen, cursor = [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/registry", params=params).json()
        seen += [entry["name"] for entry in page["names"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


def test_names_come_newest_registration_first_with_versions_and_aliases(alice, redis_client):
    store(redis_client, "alice", "mlp")
    store(redis_client, "alice", "cnn")
    store(redis_client, "alice", "mlp")  # a new version moves mlp to the front
    alice.put("/v1/registry/mlp/aliases/production", json={"version": 1})

    listing = alice.get("/v1/registry").json()

    assert [entry["name"] for entry in listing["names"]] == ["mlp", "cnn"]
    mlp = listing["names"][0]
    assert (mlp["latest_version"], mlp["versions"], mlp["aliases"]) == (2, 2, {"production": 1})
    assert mlp["updated_at"].endswith("Z")
    assert listing["next_cursor"] is None


def test_another_tenants_names_are_not_listed(alice, bob, redis_client):
    store(redis_client, "alice", "alices-model")

    assert bob.get("/v1/registry").json() == {"names": [], "next_cursor": None}
    assert [e["name"] for e in alice.get("/v1/registry").json()["names"]] == ["alices-model"]


def test_pages_follow_the_cursor_to_every_name_once(alice, redis_client):
    for name in ("a", "b", "c"):
        store(redis_client, "alice", name)

    assert all_names(alice, limit=2) == ["c", "b", "a"]
    assert all_names(alice, limit=1) == ["c", "b", "a"]


def test_names_registered_in_the_same_instant_are_neither_skipped_nor_repeated(
    alice, redis_client, monkeypatch
):
    monkeypatch.setattr(registry_module.time, "time", lambda: 1_800_000_000.25)
    for name in ("m1", "m2", "m3", "m4"):
        store(redis_client, "alice", name)

    assert all_names(alice, limit=1) == ["m4", "m3", "m2", "m1"]  # equal times: by name
    assert all_names(alice, limit=3) == ["m4", "m3", "m2", "m1"]


def test_a_name_whose_last_version_is_deleted_leaves_the_list(alice, redis_client):
    first = store(redis_client, "alice", "short-lived")
    store(redis_client, "alice", "kept")
    second = store(redis_client, "alice", "short-lived")

    alice.delete(f"/v1/models/{second['id']}")
    entries = {e["name"]: e for e in alice.get("/v1/registry").json()["names"]}
    assert (entries["short-lived"]["latest_version"], entries["short-lived"]["versions"]) == (1, 1)

    alice.delete(f"/v1/models/{first['id']}")
    assert [e["name"] for e in alice.get("/v1/registry").json()["names"]] == ["kept"]
    assert store(redis_client, "alice", "short-lived")["version"] == 3  # numbers not reused


@pytest.mark.parametrize("cursor", ["nope", "1.5", "nan:x", "inf:x", ":x"])
def test_a_cursor_the_list_never_gave_is_a_422_naming_it(alice, cursor):
    response = alice.get("/v1/registry", params={"cursor": cursor})

    assert response.status_code == 422
    assert response.json() == {"detail": f"cursor: {cursor!r} is not a cursor from this list"}

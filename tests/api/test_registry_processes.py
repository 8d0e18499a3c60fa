"""An alias moved through one API process is followed by the next request to another one."""

from __future__ import annotations

import httpx
import pytest

from tests.api.live import LiveApi
from tests.api.models_fixture import raw_digits, trained_digits_model
from worker.models_store import ModelStore

pytestmark = pytest.mark.integration
KEY = "key-registry-0123456789"


@pytest.fixture
def two_apis(redis_url, tmp_path):
    servers = [
        LiveApi(redis_url, tmp_path / f"api{i}.log", GRADQ_API_KEYS=f"acme:{KEY}") for i in (0, 1)
    ]
    yield servers
    for server in servers:
        server.stop()


def save_version(redis_client, units: int) -> dict:
    model, data = trained_digits_model(units=units)
    return ModelStore(redis_client).save(
        model,
        tenant="acme",
        job_id=None,
        name="digits",
        preprocessing=data.preprocessing,
        classes=data.classes,
        num_classes=data.num_classes,
    )


def test_an_alias_move_in_one_process_is_seen_by_the_next_request_in_another(
    redis_client, two_apis
):
    first, second = save_version(redis_client, 32), save_version(redis_client, 16)
    mover, server = (
        httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {KEY}"})
        for api in two_apis
    )
    inputs = {"inputs": raw_digits(4)[0].tolist()}

    def answer(ref: str) -> list:
        response = server.post(f"/v1/models/{ref}/predict", json=inputs)
        assert response.status_code == 200, response.text
        return response.json()["probabilities"]

    assert answer(first["id"]) != answer(second["id"])  # the two versions tell apart
    assert mover.put("/v1/registry/digits/aliases/prod", json={"version": 1}).status_code == 200
    assert answer("digits@prod") == answer(first["id"])  # now cached in the serving process
    assert mover.put("/v1/registry/digits/aliases/prod", json={"version": 2}).status_code == 200
    assert answer("digits@prod") == answer(second["id"])
    assert server.get("/v1/models/digits@prod").json()["version"] == 2
    mover.close()
    server.close()

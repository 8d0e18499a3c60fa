"""A model whose stored weights are damaged answers 500 with a message naming the object,
on prediction and on download: never a prediction from wrong weights."""

from __future__ import annotations

import pytest

from tests.api.models_fixture import raw_digits, store_digits_model
from worker.models_store import weights_key

pytestmark = pytest.mark.integration


@pytest.fixture
def damaged_model_id(app, redis_client) -> str:
    model_id = store_digits_model(redis_client, "alice")["id"]
    backend = app.state.artifacts.backend
    whole = b"".join(bytes(chunk) for chunk in backend.read(weights_key(model_id)))
    backend.write(weights_key(model_id), [whole[: len(whole) // 2]])  # a truncated copy
    return model_id


def test_predicting_with_truncated_weights_is_a_500_naming_the_object(alice, damaged_model_id):
    raw, _ = raw_digits(1)

    response = alice.post(f"/v1/models/{damaged_model_id}/predict", json={"inputs": raw.tolist()})

    assert response.status_code == 500
    assert weights_key(damaged_model_id) in response.json()["detail"]
    assert "truncated" in response.json()["detail"]


def test_downloading_truncated_weights_is_a_500_naming_the_object(alice, damaged_model_id):
    response = alice.get(f"/v1/models/{damaged_model_id}/weights")

    assert response.status_code == 500
    assert weights_key(damaged_model_id) in response.json()["detail"]

"""/v1/models: describe, download, delete, predict (JSON and images), the cache, tenants."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import nnlib
from api.app import create_app
from tests.api.conftest import KEY_A
from tests.api.models_fixture import raw_digits, store_digits_model, trained_digits_model
from tests.harness import wait_until


@pytest.fixture
def model_id(redis_client) -> str:
    return store_digits_model(redis_client, "alice")["id"]


def expected_probabilities(raw: np.ndarray) -> np.ndarray:
    """Reference: scale like training (pixels / 16), forward, softmax, in float64."""
    model, _ = trained_digits_model()
    logits = model.forward(raw.reshape(len(raw), 64) / 16.0, training=False).astype(np.float64)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_list_and_describe_models(alice, model_id):
    listed = alice.get("/v1/models").json()["models"]
    assert [m["id"] for m in listed] == [model_id]
    model = alice.get(f"/v1/models/{model_id}").json()
    assert model["input_shape"] == [64] and model["output_shape"] == [10]
    assert model["classes"] == [str(d) for d in range(10)] and model["job_id"] == "job_test"
    assert model["architecture"]["layers"][0]["units"] == 32 and model["size_bytes"] > 0


def test_weights_download_loads_into_the_same_model(alice, model_id):
    response = alice.get(f"/v1/models/{model_id}/weights")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    loaded, metadata = nnlib.load(io.BytesIO(response.content))
    original, _ = trained_digits_model()
    x = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), original.predict(x))
    assert metadata["num_classes"] == 10


def test_predict_one_sample_and_a_batch_matches_the_reference(alice, model_id):
    raw, labels = raw_digits(8)  # the fixture's batch limit
    one = alice.post(f"/v1/models/{model_id}/predict", json={"inputs": raw[0].tolist()})
    assert one.status_code == 200
    body = one.json()
    assert len(body["predictions"]) == 1 and len(body["probabilities"][0]) == 10
    batch = alice.post(f"/v1/models/{model_id}/predict", json={"inputs": raw.tolist()}).json()
    reference = expected_probabilities(raw)
    np.testing.assert_allclose(batch["probabilities"], reference, rtol=1e-4, atol=1e-6)
    assert batch["predictions"] == reference.argmax(axis=1).tolist()
    assert np.sum(np.array(batch["predictions"]) == labels) >= 7
    assert batch["labels"] == [str(p) for p in batch["predictions"]]


def test_image_models_accept_shaped_and_flattened_samples(alice, redis_client):
    image_model = store_digits_model(redis_client, "alice", as_image=True)["id"]
    raw, _ = raw_digits(3, as_image=True)
    url = f"/v1/models/{image_model}/predict"
    shaped = alice.post(url, json={"inputs": raw.tolist()}).json()
    flat = alice.post(url, json={"inputs": raw.reshape(3, 64).tolist()}).json()
    single = alice.post(url, json={"inputs": raw[0].tolist()}).json()
    wrong = alice.post(url, json={"inputs": [[1.0] * 5]}).json()["detail"]
    assert shaped["predictions"] == flat["predictions"]
    assert single["predictions"] == shaped["predictions"][:1]
    # every accepted form once, the model's own first
    assert "shape [1, 8, 8] (or [8, 8] or [64]), or a batch" in wrong


def test_a_flat_models_shape_error_names_its_shape_once(alice, model_id):
    wrong = alice.post(f"/v1/models/{model_id}/predict", json={"inputs": [1.0] * 5}).json()
    assert "expected one sample of shape [64], or a batch of them [n, 64]" in wrong["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [[1.0] * 63]}, "expected one sample of shape [64]"),
        ({"inputs": [[1.0] * 64] * 9}, "at most 8"),
        ({"inputs": [[1.0] * 64, [1.0] * 3]}, "rectangular"),
        ({"inputs": []}, "expected one sample"),
        ({"inputs": [["a"] * 64]}, "rectangular array of numbers"),
        ({"inputs": [[0.0] * 64], "extra": 1}, "exactly one field"),
    ],
)
def test_bad_inputs_are_422_saying_what_was_expected(alice, model_id, body, message):
    response = alice.post(f"/v1/models/{model_id}/predict", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_nan_and_non_json_are_422(alice, model_id):
    url = f"/v1/models/{model_id}/predict"
    nan = '{"inputs": [' + ", ".join(["NaN"] * 64) + "]}"
    response = alice.post(url, content=nan, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "NaN" in response.json()["detail"]
    garbage = alice.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 422


def photo_of(digit_raw: np.ndarray, image_format: str = "PNG") -> bytes:
    """A 64x64 image of an 8x8 digit (0..16) drawn as dark ink on light paper."""
    pixels = 255 - np.round(digit_raw.reshape(8, 8) * (255 / 16)).astype(np.uint8)
    image = Image.fromarray(pixels, mode="L").resize((64, 64), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.convert("RGB").save(out, format=image_format)
    return out.getvalue()


def test_a_photo_of_a_handwritten_digit_gets_its_digit_about_as_often_as_the_digit(alice, model_id):
    raw, labels = raw_digits(40)
    correct = 0
    for index, (sample, label) in enumerate(zip(raw, labels, strict=True)):
        image_format = "JPEG" if index % 2 else "PNG"
        files = {"file": ("digit", photo_of(sample, image_format), "application/octet-stream")}
        response = alice.post(f"/v1/models/{model_id}/predict", files=files)
        assert response.status_code == 200, response.text
        correct += response.json()["predictions"] == [int(label)]
    # re-centring an 8x8 digit can move it by a fraction of a pixel: at most 2 in 40 lost
    assert correct >= (expected_probabilities(raw).argmax(axis=1) == labels).sum() - 2


def test_an_upload_that_is_not_an_image_is_422(alice, model_id):
    files = {"file": ("digit.png", b"not an image", "image/png")}
    response = alice.post(f"/v1/models/{model_id}/predict", files=files)
    assert response.status_code == 422 and "PNG or JPEG" in response.json()["detail"]


def test_delete_removes_the_model_and_its_cache_entry(alice, app, model_id):
    url = f"/v1/models/{model_id}/predict"
    assert alice.post(url, json={"inputs": [[0.0] * 64]}).status_code == 200
    assert model_id in app.state.model_cache
    assert alice.delete(f"/v1/models/{model_id}").status_code == 204
    assert model_id not in app.state.model_cache
    assert alice.post(url, json={"inputs": [[0.0] * 64]}).status_code == 404
    assert alice.get(f"/v1/models/{model_id}").status_code == 404
    assert alice.get(f"/v1/models/{model_id}/weights").status_code == 404
    assert alice.delete(f"/v1/models/{model_id}").status_code == 404


def test_a_delete_in_one_api_process_evicts_the_model_in_another(alice, settings, model_id):
    other = create_app(settings)
    with TestClient(other, headers={"Authorization": f"Bearer {KEY_A}"}) as second:
        url = f"/v1/models/{model_id}/predict"
        assert second.post(url, json={"inputs": [[0.0] * 64]}).status_code == 200
        assert model_id in other.state.model_cache
        alice.delete(f"/v1/models/{model_id}")
        wait_until(lambda: model_id not in other.state.model_cache, 5, "the eviction message")


def test_cache_is_bounded_by_bytes(alice, redis_client, app):
    app.state.model_cache.max_bytes = 12_000  # one digits MLP is ~9 kB of float32
    first, second = (store_digits_model(redis_client, "alice")["id"] for _ in range(2))
    for model in (first, second):
        alice.post(f"/v1/models/{model}/predict", json={"inputs": [[0.0] * 64]})
    assert second in app.state.model_cache and first not in app.state.model_cache
    assert app.state.model_cache.nbytes <= 12_000


def test_another_tenants_model_is_404_everywhere(alice, bob, model_id):
    url = f"/v1/models/{model_id}"
    # alice's prediction puts the model in the cache; bob must still not reach it
    assert alice.post(f"{url}/predict", json={"inputs": [[0.0] * 64]}).status_code == 200
    assert bob.get(url).status_code == 404
    assert bob.get(f"{url}/weights").status_code == 404
    assert bob.post(f"{url}/predict", json={"inputs": [[0.0] * 64]}).status_code == 404
    assert bob.delete(url).status_code == 404
    assert bob.get("/v1/models").json()["models"] == []
    assert alice.get(url).status_code == 200


def test_prediction_latency_is_in_metrics(alice, model_id):
    alice.post(f"/v1/models/{model_id}/predict", json={"inputs": [[0.0] * 64]})
    text = alice.get("/metrics").text
    assert "gradq_prediction_duration_seconds_count 1.0" in text
    route = 'route="/v1/models/{model_id}/predict"'
    assert any(route in line and 'status="200"' in line for line in text.splitlines())


def test_cached_fast_path_answers_like_the_route_and_defers_errors_to_it(alice, app, model_id):
    raw, _ = raw_digits(3)
    url = f"/v1/models/{model_id}/predict"
    first = alice.post(url, json={"inputs": raw.tolist()})  # cache miss: the FastAPI route
    assert model_id in app.state.model_cache
    second = alice.post(url, json={"inputs": raw.tolist()})  # cached: the fast path
    assert second.status_code == 200 and second.json() == first.json()
    bad = alice.post(url, json={"inputs": [[1.0] * 5]})  # the fast path hands it to the route
    assert bad.status_code == 422 and "expected one sample of shape [64]" in bad.json()["detail"]
    extra = alice.post(url, json={"inputs": raw.tolist(), "x": 1})
    assert extra.status_code == 422
    text = alice.get("/metrics").text
    assert "gradq_prediction_duration_seconds_count 2.0" in text
    route = 'route="/v1/models/{model_id}/predict",status="200"'
    assert any(route in line and line.endswith(" 2.0") for line in text.splitlines())


@pytest.mark.parametrize("ref", ["digits", "digits@nope", "mdl_0000000000000000"])
def test_a_model_reference_that_names_nothing_is_404_listing_the_forms_that_work(alice, ref):
    for response in (
        alice.get(f"/v1/models/{ref}"),
        alice.post(f"/v1/models/{ref}/predict", json={"inputs": [[0.0] * 64]}),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == (
            f"model_id: model {ref} not found (a model is its id (mdl_ and 16 hex digits),"
            " NAME@ALIAS or NAME/versions/N)"
        )

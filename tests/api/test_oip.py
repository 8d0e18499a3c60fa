"""Open Inference Protocol v2: a Triton client gets the same answers as /v1 predict."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.api.live import LiveApi
from tests.api.models_fixture import raw_digits, store_digits_model

pytestmark = pytest.mark.integration
KEYS = {"acme": "key-acme-0123456789", "other": "key-other-0123456789"}


@pytest.fixture
def live(redis_url, tmp_path):
    keys = ",".join(f"{tenant}:{key}" for tenant, key in KEYS.items())
    server = LiveApi(redis_url, tmp_path / "api.log", GRADQ_API_KEYS=keys)
    yield server
    server.stop()


def auth(tenant: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def infer(client, name: str, raw: np.ndarray, binary: bool, version: str = "", tenant="acme"):
    tensor = triton.InferInput("input", list(raw.shape), "FP32")
    tensor.set_data_from_numpy(raw.astype(np.float32), binary_data=binary)
    return client.infer(name, [tensor], model_version=version, headers=auth(tenant))


def test_a_triton_client_gets_the_same_answer_as_v1_predict(live, redis_client):
    store_digits_model(redis_client, "acme")
    second = store_digits_model(redis_client, "acme")
    raw, _ = raw_digits(6)
    v1 = httpx.post(
        f"{live.url}/v1/models/{second['id']}/predict",
        json={"inputs": raw.tolist()},
        headers=auth("acme"),
    ).json()
    client = triton.InferenceServerClient(live.url.removeprefix("http://"))

    for binary in (False, True):
        result = infer(client, "digits-mlp", raw, binary)  # the latest version: 2
        assert result.get_response()["model_version"] == "2"
        np.testing.assert_allclose(result.as_numpy("probabilities"), v1["probabilities"], atol=0)
        assert result.as_numpy("predictions").tolist() == v1["predictions"]
    first = infer(client, "digits-mlp", raw, False, version="1").get_response()
    assert first["model_version"] == "1" and first["model_name"] == "digits-mlp"

    metadata = client.get_model_metadata("digits-mlp", headers=auth("acme"))
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert {o["name"] for o in metadata["outputs"]} == {"outputs", "probabilities", "predictions"}
    assert client.is_server_live() and client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "gradq" and server["extensions"] == ["binary_tensor_data"]
    assert client.is_model_ready("digits-mlp", headers=auth("acme"))


def test_oip_errors_name_the_problem_and_tenants_stay_apart(live, redis_client):
    store_digits_model(redis_client, "acme")
    client = triton.InferenceServerClient(live.url.removeprefix("http://"))
    with pytest.raises(InferenceServerException, match="not found"):
        infer(client, "digits-mlp", raw_digits(1)[0], False, tenant="other")
    with pytest.raises(InferenceServerException, match="expected one sample of shape"):
        infer(client, "digits-mlp", np.zeros((1, 5)), False)
    assert not client.is_model_ready("digits-mlp", headers=auth("other"))
    # every error under /v2 has the protocol's body, so the client can say what went wrong
    with pytest.raises(InferenceServerException, match="missing 'Bearer <API key>'"):
        client.get_model_metadata("digits-mlp")
    with pytest.raises(InferenceServerException, match="unknown API key"):
        client.infer("digits-mlp", [], headers={"Authorization": "Bearer nope-0123456789"})
    url = f"{live.url}/v2/models/digits-mlp"
    assert httpx.get(url).status_code == 401
    assert httpx.get(f"{live.url}/v2/no/such/route").json() == {"error": "Not Found"}
    assert httpx.get(url, headers=auth("other")).status_code == 404
    store_digits_model(redis_client, "acme")
    assert httpx.get(url + "/versions/1", headers=auth("acme")).json()["versions"] == ["1", "2"]
    bad = httpx.post(url + "/infer", content=b"{", headers=auth("acme"))
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]


def test_an_input_tensor_not_named_as_the_metadata_says_is_400_naming_the_expected_name(
    live, redis_client
):
    # KServe and Triton refuse unknown input names; an input named "x" used to be answered
    store_digits_model(redis_client, "acme")
    client = triton.InferenceServerClient(live.url.removeprefix("http://"))
    tensor = triton.InferInput("x", [1, 64], "FP32")
    tensor.set_data_from_numpy(raw_digits(1)[0].astype(np.float32), binary_data=False)

    with pytest.raises(InferenceServerException, match="unexpected input \"x\".*named 'input'"):
        client.infer("digits-mlp", [tensor], headers=auth("acme"))
    unnamed = {"inputs": [{"shape": [1, 64], "datatype": "FP32", "data": [0] * 64}]}
    response = httpx.post(
        f"{live.url}/v2/models/digits-mlp/infer", json=unnamed, headers=auth("acme")
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("inputs[0].name: missing; ")
    assert "named 'input'" in response.json()["error"]

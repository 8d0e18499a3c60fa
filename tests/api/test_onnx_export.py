"""ONNX export: every layer type, preprocessing in the graph, onnxruntime agrees with nnlib."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import onnxruntime
import pytest

import nnlib
from api.predict import format_outputs
from worker.datasets.preprocessing import apply_preprocessing
from worker.models.onnx_export import IR_VERSION, OPSET
from worker.models_store import ModelStore

INPUT_SHAPE = (2, 16, 16)
EVERY_LAYER = {
    "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "stride": 2, "padding": "same",
         "activation": "relu"},
        {"type": "batchnorm"},
        {"type": "conv2d", "filters": 6, "kernel_size": [3, 2], "stride": [1, 2], "padding": 1,
         "activation": "leaky_relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "avgpool2d", "pool_size": 2, "stride": 1},
        {"type": "gelu"},
        {"type": "dropout", "rate": 0.3},
        {"type": "flatten"},
        {"type": "dense", "units": 16, "activation": "tanh"},
        {"type": "batchnorm"},
        {"type": "dense", "units": 12, "activation": "sigmoid"},
        {"type": "dense", "units": 5, "use_bias": False},
        {"type": "leaky_relu", "alpha": 0.2},
        {"type": "softmax"},
    ]
}  # fmt: skip


@pytest.fixture
def every_layer_model(redis_client) -> tuple[nnlib.Model, dict]:
    """A model of every layer type with non-trivial batch-norm statistics, standardized inputs."""
    rng = np.random.default_rng(3)
    model = nnlib.build_model(EVERY_LAYER, INPUT_SHAPE, seed=1)
    for name, array in model.buffers().items():
        values = (
            rng.uniform(0.5, 2.0, array.shape) if "var" in name else rng.normal(0, 0.3, array.shape)
        )
        array[...] = values
    for name, array in model.parameters().items():
        if name.endswith(("gamma", "beta")):
            array[...] = rng.normal(1.0 if name.endswith("gamma") else 0.0, 0.2, array.shape)
    size = int(np.prod(INPUT_SHAPE))
    preprocessing = {
        "normalize": "standardize",
        "input_shape": list(INPUT_SHAPE),
        "mean": rng.normal(3.0, 1.0, size).tolist(),
        "std": rng.uniform(0.5, 4.0, size).tolist(),
    }
    metadata = ModelStore(redis_client).save(
        model,
        tenant="alice",
        job_id=None,
        name="every-layer",
        preprocessing=preprocessing,
        classes=[f"c{i}" for i in range(5)],
        num_classes=5,
    )
    return model, metadata


def test_export_of_every_layer_type_matches_nnlib_in_onnxruntime(alice, every_layer_model):
    model, metadata = every_layer_model
    response = alice.get("/v1/models/every-layer/versions/1/export?format=onnx")
    assert response.status_code == 200
    assert 'filename="every-layer-v1.onnx"' in response.headers["content-disposition"]
    proto = onnx.load_from_string(response.content)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == IR_VERSION and proto.opset_import[0].version == OPSET

    raw = np.random.default_rng(0).normal(3.0, 3.0, (1000, *INPUT_SHAPE)).astype(np.float32)
    session = onnxruntime.InferenceSession(response.content, providers=["CPUExecutionProvider"])
    outputs, probabilities = session.run(["outputs", "probabilities"], {"input": raw})

    expected = model.predict(apply_preprocessing(raw, metadata["preprocessing"]))
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=1e-5)
    reference = format_outputs(expected, metadata, ends_in_softmax=True)["probabilities"]
    np.testing.assert_allclose(probabilities, reference, rtol=0, atol=1e-5)


def test_export_of_a_scaled_digits_classifier_gives_the_predict_endpoints_answer(
    alice, redis_client
):
    from tests.api.models_fixture import raw_digits, store_digits_model

    store_digits_model(redis_client, "alice")
    raw, _ = raw_digits(8)
    served = alice.post("/v1/models/digits-mlp/versions/1/predict", json={"inputs": raw.tolist()})
    exported = alice.get("/v1/models/digits-mlp/versions/1/export").content
    session = onnxruntime.InferenceSession(exported, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"input": raw.astype(np.float32)})
    np.testing.assert_allclose(probabilities, served.json()["probabilities"], atol=1e-5)


def test_export_names_the_missing_onnx_package_and_other_tenants_get_404(
    alice, bob, every_layer_model, monkeypatch
):
    url = "/v1/models/every-layer/versions/1/export"
    assert bob.get(url).status_code == 404
    assert alice.get(url + "?format=tflite").status_code == 422
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the package were not installed
    response = alice.get(url)
    assert response.status_code == 501 and "gradq[onnx]" in response.json()["detail"]

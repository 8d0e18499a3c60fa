"""Optional cross-check against PyTorch (float64): same weights via the fixed layouts must give
the same outputs, input gradient, parameter gradients and batchnorm running statistics."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import build_model

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

SPEC = {
    "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 5, "kernel_size": [3, 2], "stride": 2, "padding": 1},
        {"type": "batchnorm"},
        {"type": "leaky_relu", "alpha": 0.1},
        {"type": "avgpool2d", "pool_size": 2, "stride": 1},
        {"type": "flatten"},
        {"type": "dense", "units": 6, "activation": "gelu"},
        {"type": "batchnorm", "momentum": 0.2},
        {"type": "dense", "units": 3, "activation": "tanh"},
        {"type": "dense", "units": 4, "activation": "softmax"},
    ]
}


def _torch_model():
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, (3, 2), stride=2, padding=1), nn.BatchNorm2d(5), nn.LeakyReLU(0.1),
        nn.AvgPool2d(2, stride=1), nn.Flatten(),
        nn.Linear(5 * 2 * 3, 6), nn.GELU(approximate="tanh"), nn.BatchNorm1d(6, momentum=0.2),
        nn.Linear(6, 3), nn.Tanh(), nn.Linear(3, 4), nn.Softmax(dim=1),
    ).double()  # fmt: skip


# nnlib parameter name -> (torch module index, attribute, transpose for dense W)
MAPPING = {
    "0.W": (0, "weight", False), "0.b": (0, "bias", False),
    "2.W": (3, "weight", False), "2.b": (3, "bias", False),
    "3.gamma": (4, "weight", False), "3.beta": (4, "bias", False),
    "7.W": (8, "weight", True), "7.b": (8, "bias", False),
    "8.gamma": (10, "weight", False), "8.beta": (10, "bias", False),
    "9.W": (11, "weight", True), "9.b": (11, "bias", False),
    "10.W": (13, "weight", True), "10.b": (13, "bias", False),
}  # fmt: skip


def test_outputs_and_gradients_match_pytorch_in_float64():
    model = build_model(SPEC, (2, 10, 12), seed=0, dtype=np.float64)
    reference = _torch_model()
    with torch.no_grad():
        for name, (i, attr, transpose) in MAPPING.items():
            value = model.parameters()[name] + 0.05  # move biases/betas off zero
            model.parameters()[name][...] = value
            getattr(reference[i], attr).copy_(torch.from_numpy(value.T if transpose else value))
    x = np.zeros((6, 2, 10, 12))  # blank background: max-pool ties everywhere outside the blob
    x[:, :, 3:7, 4:9] = np.random.default_rng(0).standard_normal((6, 2, 4, 5))
    dout = np.random.default_rng(1).standard_normal((6, 4))

    y = model.forward(x, training=True)
    dx = model.backward(dout)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = reference(xt)
    yt.backward(torch.from_numpy(dout))

    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    grads = model.gradients()
    for name, (i, attr, transpose) in MAPPING.items():
        expected = getattr(reference[i], attr).grad.numpy()
        np.testing.assert_allclose(grads[name], expected.T if transpose else expected, rtol=1e-8,
                                   atol=1e-12, err_msg=name)  # fmt: skip
    buffers = model.buffers()
    for index, module in (("3", reference[4]), ("8", reference[10])):
        np.testing.assert_allclose(buffers[f"{index}.running_mean"], module.running_mean.numpy())
        np.testing.assert_allclose(buffers[f"{index}.running_var"], module.running_var.numpy())

    reference.eval()
    np.testing.assert_allclose(
        model.forward(x, training=False), reference(xt).detach().numpy(), rtol=1e-10, atol=1e-12
    )

"""The two models of ``bench/multihost.py``, as a gradq spec and as the same PyTorch module.

``mlp``: Fashion-MNIST MLP 784-256-128-10 (235k parameters, 0.94 MB of float32 gradient).
``cnn``: conv5x5(32, same)-pool2-conv5x5(64, same)-pool2-dense 128-10 (455k parameters, 1.8 MB),
the CNN of ``bench/train_speed.py``. Both take (N, 1, 28, 28) float32 inputs (the torch MLP
flattens them, as gradq's does).
"""

from __future__ import annotations

import functools

MODELS = ("mlp", "cnn")


def model_spec(name: str) -> dict:
    """gradq's ``model`` spec of ``name`` (``mlp`` or ``cnn``)."""
    if name == "mlp":
        return {
            "layers": [
                {"type": "flatten"},
                {"type": "dense", "units": 256, "activation": "relu"},
                {"type": "dense", "units": 128, "activation": "relu"},
                {"type": "dense", "units": 10},
            ]
        }
    if name == "cnn":
        conv = {"type": "conv2d", "kernel_size": 5, "padding": "same", "activation": "relu"}
        return {
            "layers": [
                conv | {"filters": 32},
                {"type": "maxpool2d", "pool_size": 2},
                conv | {"filters": 64},
                {"type": "maxpool2d", "pool_size": 2},
                {"type": "flatten"},
                {"type": "dense", "units": 128, "activation": "relu"},
                {"type": "dense", "units": 10},
            ]
        }
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


@functools.cache  # builds the model once per name (the report asks per row)
def gradient_bytes(name: str) -> int:
    """Bytes of ``name``'s float32 gradient, what every step allreduces (0.94 MB, 1.8 MB)."""
    from nnlib.model import build_model

    layers = build_model(model_spec(name), (1, 28, 28)).layers
    return 4 * sum(p.size for layer in layers for p in layer.params.values())


def torch_model(name: str):
    """The PyTorch module of ``name`` (bench only: torch is not a gradq dependency)."""
    from torch import nn

    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(3136, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")

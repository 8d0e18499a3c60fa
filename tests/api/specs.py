"""Job specs for the API tests."""

from __future__ import annotations

import copy


def digits_spec(**changes) -> dict:
    """A small valid digits MLP spec; ``changes`` replace top-level fields."""
    spec = {
        "name": "digits-mlp",
        "dataset": {"name": "digits", "as_image": True, "validation_split": 0.1},
        "model": {
            "layers": [
                {"type": "flatten"},
                {"type": "dense", "units": 32, "activation": "relu"},
                {"type": "dense", "units": 10},
            ]
        },
        "loss": "cross_entropy",
        "optimizer": {"type": "adam", "lr": 0.01},
        "batch_size": 64,
        "epochs": 2,
        "shards": 2,
        "seed": 0,
    }
    spec = copy.deepcopy(spec)
    spec.update(changes)
    return spec


def with_layers(*layers: dict, **changes) -> dict:
    return digits_spec(model={"layers": list(layers)}, **changes)

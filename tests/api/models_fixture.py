"""A small digits classifier trained in-process and stored in the real ModelStore."""

from __future__ import annotations

import functools
import json

import numpy as np

import nnlib
from tests.harness import REPO_ROOT
from worker.datasets import load_dataset
from worker.models_store import ModelStore


@functools.cache
def trained_digits_model(as_image: bool = False, units: int = 32, epochs: int = 15):
    """(model, dataset) of an MLP 64-``units``-10 (ReLU) trained with Adam on digits (~97% test
    accuracy after 15 epochs); cached. bench/predict_latency.py serves one too."""
    data = load_dataset({"name": "digits", "as_image": as_image, "validation_split": 0.0})
    hidden = {"type": "dense", "units": units, "activation": "relu"}
    layers = [hidden, {"type": "dense", "units": 10}]
    spec = {"layers": [{"type": "flatten"}, *layers] if as_image else layers}
    model = nnlib.build_model(spec, data.input_shape, seed=0)
    nnlib.fit(
        model,
        "cross_entropy",
        {"type": "adam", "lr": 0.01},
        data.x_train,
        data.y_train,
        epochs=epochs,
        batch_size=64,
    )
    return model, data


def store_digits_model(redis_client, tenant: str, as_image: bool = False) -> dict:
    trained = trained_digits_model(as_image)
    return save_trained(redis_client, tenant, trained, "job_test", "digits-mlp", test_accuracy=0.97)


def save_trained(redis_client, tenant: str, trained, job_id: str, name: str, **metrics) -> dict:
    """Store a ``(model, dataset)`` pair as the worker would, with the dataset's preprocessing
    and classes; returns the stored metadata."""
    model, data = trained
    return ModelStore(redis_client).save(
        model,
        tenant=tenant,
        job_id=job_id,
        name=name,
        preprocessing=data.preprocessing,
        classes=data.classes,
        num_classes=data.num_classes,
        metrics=metrics,
    )


def raw_digits(n: int, as_image: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` raw (unscaled, 0..16) test digits and their labels."""
    from worker.datasets.builtin import digits

    raw = digits(as_image)
    return raw.x_test[:n].astype(np.float64), raw.y_test[:n]


@functools.cache
def trained_example_model(path: str = "examples/digits_mlp.json"):
    """(model, dataset) of an example job spec trained in-process as the worker would (one
    shard); cached. The issue's image references are read by ``examples/digits_mlp.json``."""
    spec = json.loads((REPO_ROOT / path).read_text())
    data = load_dataset(spec["dataset"], seed=spec.get("seed", 0))
    model = nnlib.build_model(spec["model"], data.input_shape, seed=spec.get("seed", 0))
    nnlib.fit(
        model,
        spec["loss"],
        spec["optimizer"],
        data.x_train,
        data.y_train,
        epochs=spec["epochs"],
        batch_size=spec["batch_size"],
        seed=spec.get("seed", 0),
    )
    return model, data


def store_example_model(redis_client, tenant: str) -> dict:
    trained = trained_example_model()
    return save_trained(redis_client, tenant, trained, "job_0000000000000000", "digits-mlp-example")

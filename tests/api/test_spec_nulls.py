"""Explicit nulls in a job spec survive storage, so the API and `gradq train --local` agree."""

from __future__ import annotations

import copy

import pytest

import nnlib
from api.schemas.spec import JobSpec
from nnlib.training import early_stopping_from_spec
from tests.api.specs import digits_spec
from worker.datasets import load_dataset
from worker.replica import build_loss


def stored_spec(client, spec: dict) -> dict:
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    return client.get(f"/v1/jobs/{response.json()['id']}").json()["spec"]


def test_an_explicit_null_normalize_is_stored_and_trains_raw_on_both_paths(alice, settings):
    spec = digits_spec(dataset={"name": "digits", "normalize": None})

    stored = stored_spec(alice, spec)

    assert stored["dataset"] == {"name": "digits", "validation_split": 0.1, "normalize": None}
    assert JobSpec.model_validate(stored).to_stored() == stored
    # the worker loads stored["dataset"]; `gradq train --local` loads the file's own dataset
    worker = load_dataset(stored["dataset"], seed=0, settings=settings)
    local = load_dataset(spec["dataset"], seed=0, settings=settings)
    assert worker.preprocessing == local.preprocessing == {"normalize": None, "input_shape": [64]}
    assert worker.x_train.max() == 16.0  # digits' raw pixel range, not scaled to 1


def test_a_left_out_normalize_takes_the_sets_default_on_both_paths(alice, settings):
    spec = digits_spec(dataset={"name": "digits"})

    stored = stored_spec(alice, spec)

    assert "normalize" not in stored["dataset"]
    worker = load_dataset(stored["dataset"], seed=0, settings=settings)
    assert worker.preprocessing["normalize"] == "scale" and worker.x_train.max() == 1.0


# every other optional field a client may send as null: (path in the spec, value to set)
NULL_FIELDS = [
    (("dataset", "as_image"), None),
    (("model", "layers", 1, "activation"), None),
    (("model", "layers", 1, "use_bias"), None),
    (("optimizer", "betas"), None),
    (("optimizer", "eps"), None),
    (("loss",), {"type": "cross_entropy", "label_smoothing": None}),
    (("early_stopping",), {"patience": 2, "restore_best": None}),
    (("schedule",), {"type": "cosine", "min_lr": None}),
    (("checkpoint_every",), None),
]


def _set(spec: dict, path: tuple, value) -> dict:
    spec = copy.deepcopy(spec)
    target = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return spec


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@pytest.mark.parametrize(("path", "value"), NULL_FIELDS, ids=lambda p: str(p))
def test_other_explicit_nulls_round_trip_and_mean_the_default_everywhere(
    alice, settings, path, value
):
    spec = _set(digits_spec(), path, value)

    stored = stored_spec(alice, spec)

    assert JobSpec.model_validate(stored).to_stored() == stored
    plain = _without_nulls(stored)  # the same spec with every null field left out
    assert stored != plain  # the explicit null was kept
    model = nnlib.build_model(stored["model"], (1, 8, 8), seed=0)
    assert model.spec == stored["model"]
    reference = nnlib.build_model(plain["model"], (1, 8, 8), seed=0)
    assert [layer.config() for layer in model.layers] == [
        layer.config() for layer in reference.layers
    ]
    assert type(build_loss(stored["loss"])) is type(build_loss(plain["loss"]))
    assert vars(build_loss(stored["loss"])) == vars(build_loss(plain["loss"]))
    if stored.get("early_stopping"):
        assert early_stopping_from_spec(stored["early_stopping"], True) == (
            early_stopping_from_spec(plain["early_stopping"], True)
        )
    worker = load_dataset(stored["dataset"], seed=0, settings=settings)
    assert (
        worker.preprocessing
        == load_dataset(plain["dataset"], seed=0, settings=settings).preprocessing
    )

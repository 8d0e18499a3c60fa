"""POST /v1/models: a file written by nnlib.save is served like a trained model; every kind of
bad file is refused with a 422 (or 413) naming what is wrong, and nothing is stored."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import nnlib
from tests.api.models_fixture import raw_digits, trained_digits_model
from tests.harness import npz_bytes


def saved_file(**metadata) -> bytes:
    model, data = trained_digits_model()
    buffer = io.BytesIO()
    defaults = {"classes": data.classes, "num_classes": 10, "preprocessing": data.preprocessing}
    nnlib.save(buffer, model, **(defaults | metadata))
    return buffer.getvalue()


def arrays_of(content: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(content), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def with_header(content: bytes, **changes) -> bytes:
    arrays = arrays_of(content)
    header = json.loads(arrays["__gradq__"].tobytes()) | changes
    arrays["__gradq__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return npz_bytes(**arrays)


def upload(client, content: bytes, name: str | None = "imported"):
    data = {"name": name} if name else None
    files = {"file": ("model.npz", content, "application/octet-stream")}
    return client.post("/v1/models", files=files, data=data)


def test_an_nnlib_file_is_imported_as_the_next_version_and_predicts_like_the_original(alice):
    created = upload(alice, saved_file(dataset={"name": "digits"}, metrics={"accuracy": 0.97}))
    assert created.status_code == 201, created.text
    model = created.json()
    assert model["name"] == "imported" and model["version"] == 1 and model["source"] == "upload"
    assert model["dataset"] == {"name": "digits"} and model["metrics"] == {"accuracy": 0.97}
    assert upload(alice, saved_file()).json()["version"] == 2
    raw, _ = raw_digits(5)
    answer = alice.post("/v1/models/imported@latest/predict", json={"inputs": raw.tolist()})
    assert answer.status_code == 404  # no alias yet: aliases are explicit
    answer = alice.post(f"/v1/models/{model['id']}/predict", json={"inputs": raw.tolist()})
    original, _ = trained_digits_model()
    logits = original.predict((raw / 16.0).astype(np.float32))
    assert answer.json()["predictions"] == logits.argmax(axis=1).tolist()
    assert alice.get("/v1/models/imported/versions/1").json()["classes"] == [
        str(d) for d in range(10)
    ]


def test_the_file_stem_names_the_model_when_no_name_is_given(alice):
    files = {"file": ("digits v2.npz", saved_file(), "application/octet-stream")}
    assert alice.post("/v1/models", files=files).json()["name"] == "digits v2"


def pickled_weights() -> bytes:
    arrays = arrays_of(saved_file())
    arrays["0.W"] = np.array([{"evil": 1}], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # savez pickles object arrays
    return buffer.getvalue()


def wrong_shape() -> bytes:
    arrays = arrays_of(saved_file())
    arrays["0.W"] = np.zeros((64, 31), dtype=np.float32)
    return npz_bytes(**arrays)


def missing_array() -> bytes:
    arrays = arrays_of(saved_file())
    del arrays["1.b"]
    return npz_bytes(**arrays)


def non_finite() -> bytes:
    arrays = arrays_of(saved_file())
    arrays["1.b"] = np.full(10, np.nan, dtype=np.float32)
    return npz_bytes(**arrays)


def raw_header(content: bytes, text: str) -> bytes:
    """``content`` with its header replaced by ``text`` (JSON nnlib.save would never write)."""
    arrays = arrays_of(content)
    arrays["__gradq__"] = np.frombuffer(text.encode(), dtype=np.uint8)
    return npz_bytes(**arrays)


def header_text(placeholder: str, value: str) -> str:
    """The header of a file whose metric ``loss`` is ``placeholder``, replaced by ``value``."""
    text = arrays_of(saved_file(metrics={"loss": placeholder}))["__gradq__"].tobytes().decode()
    return text.replace(f'"{placeholder}"', value)


def deeply_nested_header() -> bytes:
    arrays = arrays_of(saved_file())
    text = arrays["__gradq__"].tobytes()[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    arrays["__gradq__"] = np.frombuffer(text, dtype=np.uint8)
    return npz_bytes(**arrays)


HUGE = {"layers": [{"type": "dense", "units": 8192}, {"type": "dense", "units": 8192}]}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: b"not a zip at all", "not an .npz archive"),
        (pickled_weights, "cannot be read"),
        (lambda: npz_bytes(W=np.zeros(3)), "no '__gradq__' entry"),
        (lambda: with_header(saved_file(), format="other"), "expected 'gradq-model'"),
        (wrong_shape, "must have shape (64, 32)"),
        (missing_array, "missing ['1.b']"),
        (non_finite, "finite numbers"),
        (lambda: with_header(saved_file(), spec=HUGE), "parameters; the budget is"),
        (lambda: with_header(saved_file(), spec={"layers": [{"type": "lstm"}]}), "layer 0"),
        (lambda: with_header(saved_file(), input_shape=[0]), "input_shape"),
        (lambda: with_header(saved_file(), dtype="object"), "dtype"),
        (lambda: saved_file(classes=["a", "b"]), "metadata.classes"),
        (lambda: saved_file(classes=5), "metadata.classes must list 10"),
        (lambda: saved_file(classes=None, num_classes=3), "num_classes must be 10"),
        (lambda: saved_file(classes=None, num_classes=True), "num_classes must be 10"),
        (lambda: saved_file(metrics={"accuracy": True}), "finite numbers"),
        (lambda: saved_file(dataset="digits"), "metadata.dataset must be an object"),
        (lambda: saved_file(dataset={"name": "x" * 5000}), "at most 4096 characters"),
        (lambda: raw_header(saved_file(), header_text("x", "NaN")), "is not UTF-8 JSON"),
        (lambda: raw_header(saved_file(), header_text("x", "1e400")), "to finite numbers"),
        (lambda: raw_header(saved_file(), "[" * 100_000 + "]" * 100_000), "not UTF-8 JSON"),
        # stored, then every GET /v1/models answered 500 (the surrogate cannot be encoded)
        (
            lambda: saved_file(classes=[str(i) for i in range(9)] + ["\ud800"]),
            "metadata.classes[9]: a lone UTF-16 surrogate",
        ),
        (deeply_nested_header, "is not UTF-8 JSON"),  # was a RecursionError: 500
        (lambda: saved_file(preprocessing={"normalize": "scale", "divisor": -1}), "input_shape"),
        (
            lambda: saved_file(preprocessing={"normalize": "scale", "input_shape": [64]}),
            "divisor",
        ),
    ],
)
def test_bad_files_are_refused_naming_the_problem_and_nothing_is_stored(alice, make, message):
    response = upload(alice, make())
    assert response.status_code == 422
    assert message in str(response.json()["detail"])
    assert alice.get("/v1/models").json()["models"] == []


def test_files_over_the_size_limit_are_413_and_zip_bombs_are_refused_unpacked(alice, app):
    app.state.settings = app.state.settings.model_copy(update={"max_model_bytes": 20_000})
    too_big = upload(alice, saved_file() + b"\0" * 20_000)
    assert too_big.status_code == 413 and "model size limit" in too_big.json()["detail"]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, W=np.zeros(1_000_000, dtype=np.uint8))  # 1 MB unpacked, ~1 kB
    bomb = upload(alice, buffer.getvalue())
    assert bomb.status_code == 422 and "unpacked; the limit is 20000" in bomb.json()["detail"]


def test_a_bad_name_is_422_and_imports_belong_to_the_uploading_tenant(alice, bob):
    assert upload(alice, saved_file(), name="bad/name").status_code == 422
    model = upload(alice, saved_file()).json()
    assert bob.get(f"/v1/models/{model['id']}").status_code == 404
    assert bob.get("/v1/models/imported/versions/1").status_code == 404
    assert upload(bob, saved_file()).json()["version"] == 1

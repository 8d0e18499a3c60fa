"""The new-user trial: upload a CSV whose labels are text, train on it, and predict on the very
same file with ``gradq predict``: answers are class names, and the label column is dropped by
the name the data set recorded (docs/datasets.md, docs/api.md)."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib
from worker.datasets import load_dataset
from worker.models_store import ModelStore


@pytest.fixture
def settings(settings):
    """The API fixture's settings, with room for the whole 40-row file in one request."""
    return settings.model_copy(update={"max_predict_batch": 64})


def cancer_csv(n: int = 40) -> str:
    """Two well separated clusters; the label column sits between the features."""
    rng = np.random.default_rng(0)
    lines = ["radius,diagnosis,texture"]
    for i in range(n):
        sick = i % 2 == 0
        radius, texture = rng.normal(20 if sick else 10, 1), rng.normal(5, 1)
        lines.append(f"{radius:.3f},{'malignant' if sick else 'benign'},{texture:.3f}")
    return "\n".join(lines) + "\n"


def train_on(app, settings, dataset_id: str, record_label_column: bool = True) -> dict:
    """What a training job does with an uploaded set, in-process: load, fit, store the model
    with the set's classes and label column (``worker.job_finish``)."""
    data = load_dataset({"id": dataset_id}, redis=app.state.redis, settings=settings)
    model = nnlib.build_model({"layers": [{"type": "dense", "units": 2}]}, data.input_shape)
    nnlib.fit(
        model, "cross_entropy", {"type": "adam", "lr": 0.1}, data.x_train, data.y_train,
        epochs=30, batch_size=8,
    )  # fmt: skip
    return ModelStore(app.state.redis).save(
        model,
        tenant="alice",
        job_id="job_test",
        name="cancer",
        dataset={"id": dataset_id},
        preprocessing=data.preprocessing,
        classes=data.classes,
        num_classes=data.num_classes,
        label_column=data.label_column if record_label_column else None,
    )


@pytest.fixture
def uploaded(alice, tmp_path) -> tuple[dict, str]:
    path = tmp_path / "cancer.csv"
    path.write_text(cancer_csv())
    files = {"file": ("cancer.csv", path.read_bytes())}
    response = alice.post("/v1/datasets", files=files, data={"label_column": "diagnosis"})
    assert response.status_code == 201, response.text
    return response.json(), str(path)


def test_text_in_an_unnamed_label_column_says_only_the_label_column_may_hold_text(alice):
    files = {"file": ("cancer.csv", cancer_csv().encode())}  # the label is not the last column
    response = alice.post("/v1/datasets", files=files)

    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "line 2, column 2 ('diagnosis'): 'malignant' is not a number (only the label column "
        "may hold text: the last, 'texture', unless the label_column field names another)"
    )


def test_a_csv_with_text_labels_uploads_and_predictions_answer_with_the_names(
    alice, app, settings, uploaded
):
    info, _ = uploaded
    assert info["classes"] == ["benign", "malignant"] and info["num_classes"] == 2
    assert info["label_column"] == "diagnosis" and info["input_shape"] == [2]
    model = train_on(app, settings, info["id"])

    answer = alice.post(
        f"/v1/models/{model['id']}/predict", json={"inputs": [[20.0, 5.0], [10.0, 5.0]]}
    ).json()

    assert answer["labels"] == ["malignant", "benign"] and answer["predictions"] == [1, 0]
    shown = alice.get(f"/v1/models/{model['id']}").json()
    assert shown["label_column"] == "diagnosis"


def test_gradq_predict_drops_the_recorded_label_column_of_the_uploaded_csv(
    run,  # noqa: F811
    app,
    settings,
    uploaded,
):
    info, path = uploaded
    model = train_on(app, settings, info["id"])

    result = run("predict", model["id"], path)

    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert len(lines) == 40
    predicted = [label for _, label, _ in lines]
    assert predicted == ["malignant", "benign"] * 20


def test_without_a_recorded_label_column_the_errors_say_to_remove_it(
    run,  # noqa: F811
    app,
    settings,
    uploaded,
    tmp_path,
):
    info, path = uploaded
    model = train_on(app, settings, info["id"], record_label_column=False)
    numeric = tmp_path / "numeric.csv"
    numeric.write_text("radius,diagnosis,texture\n20,1,5\n10,0,5\n")

    text_labels = run("predict", model["id"], path)
    numbers = run("predict", model["id"], str(numeric))

    assert text_labels.exit_code == 2 and text_labels.stdout == ""
    assert "line 2, column 2 ('diagnosis'): 'malignant' is not a number" in text_labels.stderr
    assert "remove it from the file" in text_labels.stderr
    assert numbers.exit_code == 1
    assert "got shape [2, 3]" in numbers.stderr and "[n, 2]" in numbers.stderr
    assert "label column, remove it" in numbers.stderr

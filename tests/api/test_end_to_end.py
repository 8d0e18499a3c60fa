"""End to end: real Redis, Celery workers and uvicorn server, through the client and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from api.cli.main import app as cli
from api.client import ApiError, GradqClient
from tests.api.live import LiveApi
from tests.harness import npz_bytes, wait_until

KEY = "e2e-key-0123456789"


@pytest.fixture
def live_api(redis_url, tmp_path):
    server = LiveApi(redis_url, tmp_path / "api.log", GRADQ_API_KEYS=f"e2e:{KEY}")
    yield server
    server.stop()


def digits_npz() -> tuple[bytes, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    content = npz_bytes(
        x_train=x[:1500].astype(np.float32),
        y_train=y[:1500],
        x_test=x[1500:].astype(np.float32),
        y_test=y[1500:],
    )
    return content, x[1500:1532], y[1500:1532]


@pytest.mark.integration
def test_upload_train_on_two_shards_predict_and_delete(live_api, start_worker, tmp_path):
    start_worker(concurrency=2)
    content, x_check, y_check = digits_npz()
    (tmp_path / "digits.npz").write_bytes(content)
    with GradqClient(live_api.url, KEY) as api:
        dataset = api.upload_dataset(tmp_path / "digits.npz")
        assert dataset["input_shape"] == [64] and dataset["num_classes"] == 10
        spec = {
            "name": "e2e",
            "dataset": {"id": dataset["id"]},
            "model": {
                "layers": [
                    {"type": "dense", "units": 32, "activation": "relu"},
                    {"type": "dense", "units": 10},
                ]
            },
            "optimizer": {"type": "adam", "lr": 0.01},
            "batch_size": 64,
            "epochs": 4,
            "shards": 2,
            "seed": 0,
        }
        job = api.submit(spec)
        assert job["status"] == "queued"
        done = wait_until(
            lambda: (
                (j := api.job(job["id"]))["status"] in ("succeeded", "failed", "cancelled") and j
            ),
            90,
            "the job to finish",
        )
        assert done["status"] == "succeeded", done.get("status_reason")
        assert done["progress"] == 1.0 and len(done["history"]) == 4
        model_id = done["model_id"]
        answer = api.predict(model_id, x_check.tolist())
        assert np.mean(np.array(answer["predictions"]) == y_check) >= 0.8
        assert api.model(model_id)["job_id"] == job["id"]
        with pytest.raises(ApiError) as missing:
            api.delete_model("mdl_0000000000000000")
        assert missing.value.status == 404
        api.delete_model(model_id)
        api.delete_dataset(dataset["id"])
        assert api.models()["models"] == [] and api.datasets()["datasets"] == []


@pytest.mark.integration
def test_cli_submit_wait_predict_and_failures(live_api, start_worker, tmp_path, monkeypatch):
    from worker.config import get_settings

    monkeypatch.setenv("GRADQ_API_URL", live_api.url)
    monkeypatch.setenv("GRADQ_API_KEY", KEY)
    get_settings.cache_clear()
    start_worker(concurrency=1)
    spec = {
        "dataset": {"name": "digits"},
        "model": {"layers": [{"type": "dense", "units": 10}]},
        "optimizer": {"type": "adam", "lr": 0.05},
        "batch_size": 128,
        "epochs": 2,
        "shards": 1,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    runner = CliRunner()
    try:
        result = runner.invoke(cli, ["submit", str(tmp_path / "spec.json"), "--wait"])
        assert result.exit_code == 0, result.output
        assert "succeeded" in result.output
        models = GradqClient(live_api.url, KEY).models()["models"]
        np.save(tmp_path / "x.npy", np.zeros((2, 64)))
        predicted = runner.invoke(cli, ["predict", models[0]["id"], str(tmp_path / "x.npy")])
        assert predicted.exit_code == 0, predicted.output
        rows = [line.split("\t") for line in predicted.output.strip().splitlines()]
        assert [row[0] for row in rows] == ["0", "1"] and all(len(row) == 3 for row in rows)
        listed = runner.invoke(cli, ["jobs"])
        assert listed.exit_code == 0 and "succeeded" in listed.output
        shown = runner.invoke(cli, ["status", models[0]["job_id"]])
        first = shown.output.splitlines()[0]  # a short summary, the job's id and status first
        assert shown.exit_code == 0 and first.startswith(models[0]["job_id"]), shown.output
        assert first.endswith(": succeeded") and len(shown.output.splitlines()) <= 8
        np.savez(tmp_path / "set.npz", x_train=np.zeros((20, 3)), y_train=np.arange(20) % 2)
        uploaded = runner.invoke(cli, ["datasets", "upload", str(tmp_path / "set.npz")])
        assert uploaded.exit_code == 0 and '"input_shape": [' in uploaded.output
        bad = {**spec, "epochs": 0}
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        refused = runner.invoke(cli, ["submit", str(tmp_path / "bad.json")])
        assert refused.exit_code == 1 and "422" in refused.output
        # long enough that it cannot end before the cancel lands: 50 epochs of this spec
        # once finished inside the one HTTP round trip between submit and cancel (CI, stop 20)
        hidden = [{"type": "dense", "units": 256, "activation": "relu"}] + spec["model"]["layers"]
        slow = {**spec, "model": {"layers": hidden}, "epochs": 1000}
        job_id = GradqClient(live_api.url, KEY).submit(slow)["id"]
        assert runner.invoke(cli, ["cancel", job_id]).exit_code == 0
        watched = runner.invoke(cli, ["watch", job_id])
        assert watched.exit_code == 1 and "cancelled" in watched.output
    finally:
        get_settings.cache_clear()


@pytest.mark.integration
def test_a_csv_with_text_labels_trains_and_predicts_from_the_same_file_by_name(
    live_api, start_worker, tmp_path, monkeypatch
):
    # the new-user trial: text labels were a 422, and the uploaded file could not be predicted
    from tests.api.test_text_label_predict import cancer_csv
    from worker.config import get_settings

    monkeypatch.setenv("GRADQ_API_URL", live_api.url)
    monkeypatch.setenv("GRADQ_API_KEY", KEY)
    get_settings.cache_clear()
    start_worker(concurrency=1)
    path = tmp_path / "cancer.csv"
    path.write_text(cancer_csv(40))
    runner = CliRunner()
    try:
        uploaded = runner.invoke(
            cli, ["datasets", "upload", str(path), "--label-column", "diagnosis"]
        )
        assert uploaded.exit_code == 0, uploaded.output
        dataset = json.loads(uploaded.stdout)
        assert dataset["classes"] == ["benign", "malignant"]
        spec = {
            "dataset": {"id": dataset["id"], "validation_split": 0},
            "model": {"layers": [{"type": "dense", "units": 2}]},
            "optimizer": {"type": "adam", "lr": 0.1},
            "batch_size": 8,
            "epochs": 20,
        }
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        result = runner.invoke(cli, ["submit", str(tmp_path / "spec.json"), "--wait"])
        assert result.exit_code == 0 and "succeeded" in result.output, result.output
        model = GradqClient(live_api.url, KEY).models()["models"][0]
        assert model["classes"] == ["benign", "malignant"]
        assert model["label_column"] == "diagnosis"  # recorded by the worker with the model

        (tmp_path / "few.csv").write_text(cancer_csv(8))  # the same format, within the batch limit
        predicted = runner.invoke(cli, ["predict", model["id"], str(tmp_path / "few.csv")])

        assert predicted.exit_code == 0, predicted.output
        labels = [line.split("\t")[1] for line in predicted.stdout.strip().splitlines()]
        assert labels == ["malignant", "benign"] * 4
    finally:
        get_settings.cache_clear()

"""What a user sees from the remote CLI commands, off a terminal (as in CI logs and pipes).

The commands run against the real app and Redis: only the CLI's HTTP client is pointed at the
app in-process (``TestClient`` is an ``httpx.Client``); unreachable-API and ``--help`` run the real
``gradq`` process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.api.models_fixture import raw_digits, store_digits_model
from tests.harness import REPO_ROOT, free_port, wait_until, worker_env
from worker.jobs import JobStore
from worker.models_store import ModelStore


def gradq(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api.cli.main", *args],
        cwd=REPO_ROOT,
        env=worker_env("redis://unused", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unreachable_api_is_one_line_with_the_cause_and_exit_1():
    url = f"http://127.0.0.1:{free_port()}"

    result = gradq("models", GRADQ_API_URL=url)

    assert result.returncode == 1 and result.stdout == ""  # errors go to stderr
    assert result.stderr.strip().splitlines() == [
        f"error cannot reach the API at {url} ([Errno 111] Connection refused); "
        "is it running? (GRADQ_API_URL)"
    ]
    assert "Traceback" not in result.stderr


def test_help_shows_wait_as_a_flag():
    result = gradq("submit", "--help")

    assert result.returncode == 0
    assert "--wait  Show live progress until it ends" in result.stdout
    assert "<bool>" not in result.stdout


def test_models_lists_the_name_in_full_width_rows_or_one_json_line(run, redis_client):
    saved = store_digits_model(redis_client, "alice")

    table = run("models")
    as_json = run("models", "--json")

    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if saved["id"] in line)
    assert "digits-mlp" in row and "0.9700" in row  # the whole row, not cut at 80 columns
    assert as_json.exit_code == 0, (as_json.output, as_json.exception)
    assert json.loads(as_json.stdout)["models"][0]["id"] == saved["id"]
    assert len(as_json.stdout.strip().splitlines()) == 1


def test_jobs_json_is_the_api_page_on_one_line(run, alice):
    from tests.api.specs import digits_spec

    job_id = alice.post("/v1/jobs", json=digits_spec()).json()["id"]

    result = run("jobs", "--json")

    assert result.exit_code == 0, result.output
    assert [job["id"] for job in json.loads(result.stdout)["jobs"]] == [job_id]


def test_predict_prints_one_line_per_sample(run, redis_client, tmp_path):
    saved = store_digits_model(redis_client, "alice")
    raw, labels = raw_digits(8)
    np.save(tmp_path / "x.npy", raw)

    result = run("predict", saved["id"], str(tmp_path / "x.npy"))

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 8
    index, label, confidence = lines[0].split("\t")
    assert index == "0" and label == str(labels[0]) and 0 < float(confidence) <= 1


def test_delete_model_removes_it_and_clears_it_from_its_job(run, redis_client):
    from tests.api.models_fixture import trained_digits_model

    store = JobStore(redis_client)
    job = store.create({"name": "t", "shards": 1}, "alice")["id"]
    saved = ModelStore(redis_client).save(trained_digits_model()[0], tenant="alice", job_id=job)
    store.transition(job, "running")
    store.transition(job, "succeeded", changes={"model_id": saved["id"]})

    result = run("models", "delete", saved["id"])

    assert result.exit_code == 0 and f"deleted {saved['id']}" in result.stdout
    assert ModelStore(redis_client).get(saved["id"]) is None
    assert store.get(job)["model_id"] is None


def test_watch_off_a_terminal_prints_a_line_per_epoch_and_the_real_last_step(
    run, alice, redis_client
):
    from tests.api.specs import digits_spec

    job_id = alice.post("/v1/jobs", json=digits_spec(epochs=3)).json()["id"]
    store = JobStore(redis_client)

    def play_an_early_stopping_worker():
        wait_until(lambda: redis_client.info("clients")["blocked_clients"] >= 1, 10, "reader")
        store.transition(job_id, "running")
        history = []
        for epoch in (1, 2):
            history.append({"epoch": epoch, "train_loss": 0.5 / epoch, "val_loss": 0.6 / epoch,
                            "val_accuracy": 0.8 + epoch / 100, "seconds": 1.0})  # fmt: skip
            store.update(job_id, {"step": 30 * epoch, "steps_total": 90}, event="progress")
            store.update(job_id, {"epoch": epoch, "history": history}, event="epoch")
        store.update(job_id, {"step": 63})
        store.transition(job_id, "succeeded", "stopped early: no improvement")

    worker = threading.Thread(target=play_an_early_stopping_worker, daemon=True)
    worker.start()
    result = run("watch", job_id)
    worker.join(10)

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert "epoch 1/3: train loss 0.5000, val loss 0.6000, val acc 0.810, 1.0 s" in lines
    assert "epoch 2/3: train loss 0.2500, val loss 0.3000, val acc 0.820, 1.0 s" in lines
    assert lines[-1] == f"{job_id}: succeeded (stopped early: no improvement) at step 63/90"


def test_models_names_lists_each_name_with_its_latest_version_and_aliases(run, alice, redis_client):
    for _ in range(2):
        store_digits_model(redis_client, "alice")
    alice.put("/v1/registry/digits-mlp/aliases/production", json={"version": 1})

    table = run("models", "names")
    as_json = run("models", "names", "--json")

    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "digits-mlp" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        "digits-mlp",
        "2",
        "2",
        "production -> 1",
    ]
    assert as_json.exit_code == 0, as_json.output
    assert [e["name"] for e in json.loads(as_json.stdout)["names"]] == ["digits-mlp"]


def test_a_refused_spec_prints_one_readable_line_per_error(run, tmp_path):
    from tests.api.specs import with_layers

    spec = with_layers({"type": "dense", "units": 0}, dataset={"name": "digitz"})
    (tmp_path / "spec.json").write_text(json.dumps(spec))

    result = run("submit", str(tmp_path / "spec.json"))

    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error HTTP 422: dataset.name: "
        "Input should be 'digits', 'mnist', 'fashion-mnist', 'blobs' or 'spirals'",
        "error HTTP 422: model.layers[0].units: Input should be greater than or equal to 1",
    ]


def test_an_error_with_a_plain_detail_stays_one_line(run):
    result = run("status", "job_0123456789abcdef")

    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error HTTP 404: job_id: job job_0123456789abcdef not found"
    ]


@pytest.mark.parametrize("command", [["submit"], ["study", "create"], ["train", "--local"]])
def test_a_file_that_is_not_json_is_one_error_line_naming_file_and_place(command, run, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text("{bad")

    result = run(*command, str(spec))

    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"{spec}: not valid JSON: Expecting property name" in lines[0]
    assert "line 1 column 2" in lines[0]


@pytest.mark.parametrize("command", [["submit"], ["study", "create"], ["train", "--local"]])
@pytest.mark.parametrize("word", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_number_is_refused_naming_its_path(command, word, run, tmp_path):
    from tests.api.specs import digits_spec

    text = json.dumps(digits_spec() | {"optimizer": {"type": "sgd", "lr": 0.5}})
    spec = tmp_path / "spec.json"
    spec.write_text(text.replace("0.5", word))

    result = run(*command, str(spec))

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error{':' if 'train' in command else ''} {spec}: optimizer.lr: "
        f"{word} is not a number JSON allows"
    ]


def test_datasets_list_shows_each_column_the_api_returns(run, alice, tmp_path):
    from tests.api.test_datasets import npz_bytes

    (tmp_path / "set.npz").write_bytes(npz_bytes())
    assert run("datasets", "upload", str(tmp_path / "set.npz")).exit_code == 0
    listed = alice.get("/v1/datasets").json()["datasets"][0]

    result = run("datasets", "list")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if listed["id"] in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert listed["size_bytes"] > 0 and listed["task"] == "classification"
    shown = [listed["name"], listed["task"], str(listed["input_shape"]), str(listed["size_bytes"])]
    assert cells == [listed["id"], *shown]


def test_jobs_table_off_a_terminal_shows_a_long_name_whole(run, alice):
    from tests.api.specs import digits_spec

    name = "fashion-mnist-mlp-with-a-long-name"
    job_id = alice.post("/v1/jobs", json=digits_spec(name=name)).json()["id"]

    result = run("jobs")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if job_id in line)
    assert name in row and "…" not in result.stdout

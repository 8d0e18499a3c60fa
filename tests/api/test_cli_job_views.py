"""What ``gradq status``, ``submit --json`` and ``--wait`` off a terminal show (real app and Redis
in-process, the worker played by hand through the JobStore, as in test_cli_output)."""

from __future__ import annotations

import io
import json
import threading

import pytest
from rich.console import Console

from api.cli.progress import EpochLines
from tests.api.models_fixture import store_digits_model
from tests.api.specs import digits_spec
from tests.harness import wait_until
from worker.jobs import JobStore


def finished_job(redis_client, model_id: str | None = None) -> str:
    """A job that ran 3 epochs of 3 and stopped early, its val accuracy best in epoch 2."""
    store = JobStore(redis_client)
    job_id = store.create(digits_spec(epochs=3) | {"name": "digits-mlp"}, "alice")["id"]
    store.transition(job_id, "running")
    history = [{"epoch": e, "train_loss": 0.5 / e, "val_accuracy": a, "seconds": 1.0}
               for e, a in ((1, 0.91), (2, 0.9612), (3, 0.95))]  # fmt: skip
    store.update(job_id, {"epoch": 3, "step": 63, "steps_total": 90, "progress": 0.7,
                          "history": history}, event="epoch")  # fmt: skip
    changes = {"metrics": {"test_accuracy": 0.958}, "model_id": model_id}
    store.transition(job_id, "succeeded", "stopped early: no improvement", changes=changes)
    return job_id


def test_status_is_a_short_summary_and_json_is_the_whole_record(run, redis_client):
    model = store_digits_model(redis_client, "alice")
    job_id = finished_job(redis_client, model["id"])

    shown = run("status", job_id)
    as_json = run("status", job_id, "--json")

    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[:5] == [
        f"{job_id} digits-mlp: succeeded (stopped early: no improvement)",
        "progress  epoch 3/3, step 63/90 (70%)",
        "accuracy  best val 0.9612 (epoch 2), test 0.9580",
        f"model     {model['id']} (digits-mlp/versions/{model['version']})",
        "restarts  0, resumes 0",
    ]
    assert lines[5].startswith("started   ") and ", ran " in lines[5] and len(lines) == 6
    record = json.loads(as_json.stdout)
    assert len(as_json.stdout.splitlines()) == 1 and record["history"][1]["val_accuracy"] == 0.9612


def test_status_of_a_queued_job_says_it_has_not_started(run, alice):
    job_id = alice.post("/v1/jobs", json=digits_spec(epochs=4)).json()["id"]

    lines = run("status", job_id).stdout.splitlines()

    assert lines[0] == f"{job_id} digits-mlp: queued (waiting for a worker to start the job)"
    assert lines[1] == "progress  epoch -/4, step 0 (0%)"
    assert lines[-1].startswith("started   not yet (submitted 20")


def test_submit_json_prints_the_api_answer_on_one_line(run, tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(digits_spec()))

    result = run("submit", str(tmp_path / "spec.json"), "--json")

    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    answer = json.loads(result.stdout)
    assert answer["id"].startswith("job_") and answer["status"] == "queued"


def play_worker(redis_client, epochs: int = 2) -> threading.Thread:
    """Runs the job the CLI submits (the only active one) once the CLI follows its events:
    two progress reports within each epoch, then the epoch, then success."""
    store = JobStore(redis_client)

    def play() -> None:
        wait_until(lambda: redis_client.info("clients")["blocked_clients"] >= 1, 10, "reader")
        (job_id,) = store.active_ids()
        store.transition(job_id, "running")
        history = []
        for epoch in range(1, epochs + 1):
            for step in (10, 20):
                position = {"epoch": epoch, "step": 30 * (epoch - 1) + step, "steps_total": 90}
                store.update(job_id, position | {"train_loss": 1.0 / step}, event="progress")
            history.append({"epoch": epoch, "train_loss": 0.5, "val_accuracy": 0.9, "seconds": 2})
            store.update(job_id, {"step": 30 * epoch, "history": history}, event="epoch")
        store.transition(job_id, "succeeded")

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


def test_submit_wait_json_prints_only_the_final_record_on_stdout(run, redis_client, tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(digits_spec(epochs=2)))
    worker = play_worker(redis_client)

    result = run("submit", str(tmp_path / "spec.json"), "--wait", "--json")
    worker.join(10)

    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    final = json.loads(result.stdout)
    assert final["status"] == "succeeded" and len(final["history"]) == 2
    assert result.stderr.splitlines()[0] == f"submitted {final['id']} (queued)"
    assert "epoch 2/2: train loss 0.5000, val acc 0.900, 2.0 s" in result.stderr


def test_wait_off_a_terminal_adds_progress_lines_within_an_epoch(
    run,
    redis_client,
    tmp_path,
    monkeypatch,
):
    from worker.config import get_settings

    monkeypatch.setenv("GRADQ_CLI_PROGRESS_SECONDS", "0.000001")  # every progress event
    get_settings.cache_clear()
    (tmp_path / "spec.json").write_text(json.dumps(digits_spec(epochs=2)))
    worker = play_worker(redis_client)

    result = run("submit", str(tmp_path / "spec.json"), "--wait")
    worker.join(10)
    get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    first_epoch = lines.index("epoch 1/2: train loss 0.5000, val acc 0.900, 2.0 s")
    assert lines[first_epoch - 2 : first_epoch] == [
        "epoch 1/2: step 10/90, loss 0.1000",
        "epoch 1/2: step 20/90, loss 0.0500",
    ]
    assert "epoch 2/2: step 50/90, loss 0.0500" in lines


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds_between_reports", "reports", "lines_at_steps"),
    [(1.0, 100, [30, 60, 90]), (40.0, 3, [1, 2, 3])],
)
def test_progress_lines_come_at_most_every_30_seconds(
    seconds_between_reports, reports, lines_at_steps
):
    out, clock = io.StringIO(), FakeClock()
    lines = EpochLines(Console(file=out, width=200), every=30.0, clock=clock)
    lines.update("state", {"status": "running", "epochs": 1})
    for step in range(1, reports + 1):
        clock.now += seconds_between_reports
        lines.update("progress", {"epoch": 1, "step": step, "steps_total": 100, "train_loss": 0.5})

    shown = out.getvalue().splitlines()
    assert shown == ["status running"] + [
        f"epoch 1/1: step {step}/100, loss 0.5000" for step in lines_at_steps
    ]


def test_watching_an_unknown_job_is_one_error_line_not_a_reconnection(run):
    result = run("watch", "job_0123456789abcdef")

    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error HTTP 404: job_id: job job_0123456789abcdef not found"
    ]

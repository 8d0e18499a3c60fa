"""GET /v1/jobs/{id}/metrics: the recorded loss curve and the epoch history, JSON or CSV."""

from __future__ import annotations

import csv
import io

from tests.api.specs import digits_spec
from worker.fence import Unfenced
from worker.jobs import JobStore
from worker.loss_curve import LossRecorder


def _job_with_curve(app, tenant: str, steps: int) -> str:
    store = JobStore(app.state.redis)
    record = store.create(digits_spec(), tenant)
    recorder = LossRecorder(Unfenced(app.state.redis), record["id"], steps_total=steps)
    for step in range(1, steps + 1):
        recorder.add(step, 1.0 / step)
    recorder.flush()
    history = [
        {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.7},
        {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.8},
    ]
    store.update(record["id"], {"history": history}, event="epoch")
    return record["id"]


def test_metrics_return_the_recorded_steps_and_the_epoch_series(app, alice):
    job_id = _job_with_curve(app, "alice", steps=20)

    body = alice.get(f"/v1/jobs/{job_id}/metrics").json()

    assert body["steps"]["step"] == list(range(1, 21))
    assert body["steps"]["train_loss"][3] == 0.25
    assert body["epochs"]["val_accuracy"] == [0.7, 0.8]
    assert body["points_recorded"] == 20 and body["downsampled"] is False


def test_metrics_are_averaged_down_to_max_points(app, alice):
    job_id = _job_with_curve(app, "alice", steps=100)

    body = alice.get(f"/v1/jobs/{job_id}/metrics?max_points=10").json()

    assert len(body["steps"]["step"]) == 10 and body["steps"]["step"][-1] == 100
    assert body["downsampled"] is True and body["points_recorded"] == 100


def test_since_returns_only_the_points_after_that_many(app, alice):
    job_id = _job_with_curve(app, "alice", steps=20)

    body = alice.get(f"/v1/jobs/{job_id}/metrics?since=18").json()

    assert body["steps"]["step"] == [19, 20] and body["points_recorded"] == 20


def test_metrics_as_csv_are_long_format_rows(app, alice):
    job_id = _job_with_curve(app, "alice", steps=3)

    response = alice.get(f"/v1/jobs/{job_id}/metrics?format=csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))

    assert response.headers["content-type"].startswith("text/csv")
    assert rows[0] == {
        "job_id": job_id,
        "series": "train_loss_step",
        "step": "1",
        "epoch": "",
        "value": "1.0",
    }
    assert {
        "job_id": job_id,
        "series": "val_accuracy",
        "step": "",
        "epoch": "2",
        "value": "0.8",
    } in rows


def test_another_tenants_metrics_are_a_404(app, bob):
    job_id = _job_with_curve(app, "alice", steps=3)

    assert bob.get(f"/v1/jobs/{job_id}/metrics").status_code == 404


def test_an_unknown_format_is_a_422_naming_the_parameter(app, alice):
    job_id = _job_with_curve(app, "alice", steps=3)

    response = alice.get(f"/v1/jobs/{job_id}/metrics?format=xml")

    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == [
        "query",
        "format",
    ]


def test_jobs_can_be_listed_by_part_of_their_name(app, alice):
    store = JobStore(app.state.redis)
    store.create(digits_spec() | {"name": "Alpha-run"}, "alice")
    store.create(digits_spec() | {"name": "beta"}, "alice")

    names = [j["name"] for j in alice.get("/v1/jobs?name=ALPHA").json()["jobs"]]

    assert names == ["Alpha-run"]

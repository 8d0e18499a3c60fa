"""/v1/datasets: validated uploads, listing, deletion (409 while in use), tenants; jobs on them."""

from __future__ import annotations

import numpy as np

import api.routers.studies
from api.deps import get_submitter
from tests.api.specs import digits_spec
from tests.harness import npz_bytes as to_npz
from tests.studies.conftest import digits_study
from worker.datasets import DatasetStore
from worker.datasets.in_use import delete_unless_in_use
from worker.fence import Unfenced
from worker.jobs import JobStore
from worker.storage.checkpoints import save_checkpoint
from worker.studies.store import StudyStore


def npz_bytes(n: int = 40, features: int = 6, classes: int = 3, **overrides) -> bytes:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.random((n, features)).astype(np.float32),
        "y_train": np.arange(n) % classes,
        **overrides,
    }
    return to_npz(**arrays)


def upload(client, content: bytes, filename: str = "set.npz", **form):
    return client.post("/v1/datasets", files={"file": (filename, content)}, data=form or None)


def test_upload_npz_then_list_get_delete(alice):
    response = upload(alice, npz_bytes())
    assert response.status_code == 201, response.text
    info = response.json()
    assert info["id"].startswith("ds_") and info["input_shape"] == [6]
    assert info["num_classes"] == 3 and info["task"] == "classification"
    assert info["shapes"]["x_train"] == [40, 6] and len(info["sha256"]) == 64
    assert "arrays" not in info  # storage details stay internal
    assert [d["id"] for d in alice.get("/v1/datasets").json()["datasets"]] == [info["id"]]
    assert alice.get(f"/v1/datasets/{info['id']}").json()["filename"] == "set.npz"
    assert alice.delete(f"/v1/datasets/{info['id']}").status_code == 204
    assert alice.get(f"/v1/datasets/{info['id']}").status_code == 404
    assert alice.delete(f"/v1/datasets/{info['id']}").status_code == 404


def test_upload_csv_with_a_label_column(alice):
    rows = "a,label,b\n" + "".join(f"{i},{i % 2},{i * 2}\n" for i in range(20))
    response = upload(alice, rows.encode(), "table.csv", label_column="label")
    assert response.status_code == 201, response.text
    assert response.json()["input_shape"] == [2] and response.json()["num_classes"] == 2


def test_refused_uploads_are_422_naming_the_problem(alice):
    wrong_type = upload(alice, b"hello", "notes.txt")
    assert wrong_type.status_code == 422 and "notes.txt" in wrong_type.json()["detail"]
    x = np.ones((40, 6), dtype=np.float32)
    x[3, 2] = np.nan
    nan = upload(alice, npz_bytes(x_train=x))
    assert nan.status_code == 422 and "x_train" in nan.json()["detail"]
    missing = alice.post("/v1/datasets", data={"label_column": "y"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "file"]


def test_upload_over_the_size_limit_is_413(alice):
    big = npz_bytes(n=12_000, features=6)  # ~290 kB > the fixture's 256 kB
    response = upload(alice, big)
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_jobs_on_an_uploaded_set_are_shape_checked_against_it(alice):
    dataset_id = upload(alice, npz_bytes()).json()["id"]
    layers = [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 3}]
    spec = digits_spec(dataset={"id": dataset_id}, model={"layers": layers}, batch_size=8)
    assert alice.post("/v1/jobs", json=spec).status_code == 202
    wrong = digits_spec(dataset={"id": dataset_id}, model={"layers": layers[:1]}, batch_size=8)
    response = alice.post("/v1/jobs", json=wrong)
    assert response.status_code == 422 and "[3]" in response.json()["detail"][0]["msg"]


def test_delete_is_409_while_a_queued_job_uses_the_set(alice):
    dataset_id = upload(alice, npz_bytes()).json()["id"]
    layers = [{"type": "dense", "units": 3}]
    spec = digits_spec(dataset={"id": dataset_id}, model={"layers": layers}, batch_size=8)
    job_id = alice.post("/v1/jobs", json=spec).json()["id"]
    response = alice.delete(f"/v1/datasets/{dataset_id}")
    assert response.status_code == 409 and job_id in response.json()["detail"]
    alice.post(f"/v1/jobs/{job_id}/cancel")
    assert alice.delete(f"/v1/datasets/{dataset_id}").status_code == 204


def test_another_tenants_set_is_404_and_unusable(alice, bob):
    dataset_id = upload(alice, npz_bytes()).json()["id"]
    assert bob.get(f"/v1/datasets/{dataset_id}").status_code == 404
    assert bob.delete(f"/v1/datasets/{dataset_id}").status_code == 404
    assert bob.get("/v1/datasets").json()["datasets"] == []
    spec = digits_spec(
        dataset={"id": dataset_id}, model={"layers": [{"type": "dense", "units": 3}]}
    )
    response = bob.post("/v1/jobs", json=spec)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "id"
    assert alice.get(f"/v1/datasets/{dataset_id}").status_code == 200


def test_the_list_pages_with_a_cursor(alice):
    ids = []
    for i in range(3):
        content = to_npz(x_train=np.full((20, 2), i, np.float32), y_train=np.arange(20) % 2)
        files = {"file": (f"set{i}.npz", content, "application/octet-stream")}
        ids.append(alice.post("/v1/datasets", files=files).json()["id"])
    first = alice.get("/v1/datasets?limit=2").json()
    second = alice.get(f"/v1/datasets?limit=2&cursor={first['next_cursor']}").json()
    assert [d["id"] for d in first["datasets"] + second["datasets"]] == ids[::-1]
    assert second["next_cursor"] is None
    for bad in ("abc", "nan", "inf"):
        assert alice.get(f"/v1/datasets?cursor={bad}").status_code == 422


def test_a_set_deleted_while_a_job_on_it_was_being_submitted_refuses_the_job(alice, app):
    """The delete lands after the API checked the set and before the job is created: the job
    is refused with 422 naming the field, and nothing of it is stored."""
    dataset_id = upload(alice, npz_bytes()).json()["id"]
    store = JobStore(app.state.redis)

    def delete_then_create(spec, tenant, max_active):
        assert delete_unless_in_use(DatasetStore(app.state.redis), dataset_id) is True
        return store.create(spec, tenant, max_active)

    app.dependency_overrides[get_submitter] = lambda: delete_then_create
    layers = [{"type": "dense", "units": 3}]
    spec = digits_spec(dataset={"id": dataset_id}, model={"layers": layers}, batch_size=8)

    response = alice.post("/v1/jobs", json=spec)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "dataset", "id"]
    assert dataset_id in response.json()["detail"][0]["msg"]
    assert alice.get("/v1/jobs").json()["jobs"] == [] and store.active_ids() == []


def test_delete_names_every_unfinished_job_on_the_set(alice):
    dataset_id = upload(alice, npz_bytes()).json()["id"]
    layers = [{"type": "dense", "units": 3}]
    spec = digits_spec(dataset={"id": dataset_id}, model={"layers": layers}, batch_size=8)
    job_ids = [alice.post("/v1/jobs", json=spec).json()["id"] for _ in range(2)]

    response = alice.delete(f"/v1/datasets/{dataset_id}")

    assert response.status_code == 409
    assert all(f"{job_id} (queued)" in response.json()["detail"] for job_id in job_ids)
    assert response.json()["detail"].startswith("dataset_id: ")


def test_a_job_whose_set_was_deleted_does_not_resume(alice, app):
    dataset_id = upload(alice, npz_bytes()).json()["id"]
    layers = [{"type": "dense", "units": 3}]
    spec = digits_spec(dataset={"id": dataset_id}, model={"layers": layers}, batch_size=8)
    job_id = alice.post("/v1/jobs", json=spec).json()["id"]
    alice.post(f"/v1/jobs/{job_id}/cancel")
    fence = Unfenced(app.state.redis)  # written as the cancelled attempt left it
    save_checkpoint(app.state.artifacts, job_id, {}, {}, {"global_step": 1}, fence=fence)
    assert alice.delete(f"/v1/datasets/{dataset_id}").status_code == 204  # nothing runs on it

    response = alice.post(f"/v1/jobs/{job_id}/resume")

    assert response.status_code == 409 and dataset_id in response.json()["detail"]
    assert alice.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    assert app.state.started == []


def test_delete_is_409_naming_a_running_study_on_the_set(alice, redis_client):
    dataset_id = upload(alice, npz_bytes()).json()["id"]
    base = digits_study()["base_spec"] | {"dataset": {"id": dataset_id, "validation_split": 0.25}}
    base["model"] = {"layers": [{"type": "dense", "units": 8}, {"type": "dense", "units": 3}]}
    space = {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}}
    created = alice.post("/v1/studies", json=digits_study(base_spec=base, space=space))
    assert created.status_code == 202, created.text
    study_id = created.json()["id"]

    response = alice.delete(f"/v1/datasets/{dataset_id}")

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"dataset_id: data set {dataset_id} is used by running studies: {study_id}"
    )
    assert alice.get(f"/v1/datasets/{dataset_id}").status_code == 200
    StudyStore(redis_client).update(study_id, {"status": "cancelled"})  # as its coordinator ends it
    assert alice.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    refused = alice.post("/v1/studies", json=digits_study(base_spec=base, space=space))
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "base_spec", "dataset", "id"]


def test_a_study_whose_set_is_deleted_after_its_checks_is_a_422_and_not_stored(
    alice, app, monkeypatch
):
    dataset_id = upload(alice, npz_bytes()).json()["id"]
    base = digits_study()["base_spec"] | {"dataset": {"id": dataset_id, "validation_split": 0.25}}
    base["model"] = {"layers": [{"type": "dense", "units": 3}]}
    space = {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}}
    real_check = api.routers.studies.checked_study

    def check_then_delete(*args):
        request = real_check(*args)
        assert delete_unless_in_use(DatasetStore(app.state.redis), dataset_id) is True
        return request

    monkeypatch.setattr(api.routers.studies, "checked_study", check_then_delete)

    response = alice.post("/v1/studies", json=digits_study(base_spec=base, space=space))

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "base_spec", "dataset", "id"]
    assert dataset_id in response.json()["detail"][0]["msg"]
    assert alice.get("/v1/studies").json()["studies"] == []

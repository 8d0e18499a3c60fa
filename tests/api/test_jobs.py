"""POST/GET /v1/jobs, listing, cancel: validation before queueing, limits, tenants."""

from __future__ import annotations

import json

import pytest

from tests.api.specs import digits_spec, with_layers
from tests.harness import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"


def locs(response) -> list[list]:
    return [error["loc"] for error in response.json()["detail"]]


def test_submit_queues_a_valid_job_and_returns_its_record(alice):
    response = alice.post("/v1/jobs", json=digits_spec())
    assert response.status_code == 202
    job = response.json()
    assert job["id"].startswith("job_") and job["status"] == "queued"
    assert job["progress"] == 0.0 and job["shards"] == 2
    assert alice.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"epochs": 1001}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"shards": 65}, "shards"),
        ({"optimizer": {"type": "sgd", "lr": 0}}, "optimizer"),
        ({"optimizer": {"type": "lion", "lr": 0.1}}, "optimizer"),
        ({"loss": "hinge"}, "loss"),
        ({"surprise": 1}, "surprise"),
        ({"dataset": {"name": "imagenet"}}, "dataset"),
        ({"schedule": {"type": "cosine", "warmup_steps": -1}}, "schedule"),
    ],
)
def test_submit_refuses_out_of_bounds_fields_naming_them(alice, change, field):
    response = alice.post("/v1/jobs", json=digits_spec(**change))
    assert response.status_code == 422
    assert any(field in loc for loc in locs(response)), response.json()


def test_submit_refuses_batch_smaller_than_shards(alice):
    response = alice.post("/v1/jobs", json=digits_spec(batch_size=2, shards=4))
    assert response.status_code == 422
    assert "batch_size" in str(response.json()["detail"])


def test_submit_refuses_too_many_layers_and_units(alice):
    too_many = with_layers(*[{"type": "relu"}] * 65)
    assert alice.post("/v1/jobs", json=too_many).status_code == 422
    wide = with_layers({"type": "flatten"}, {"type": "dense", "units": 8193})
    response = alice.post("/v1/jobs", json=wide)
    assert response.status_code == 422
    assert ["body", "model", "layers", 1, "units"] in locs(response)


def test_submit_refuses_unknown_layer_type_and_layer_fields(alice):
    assert alice.post("/v1/jobs", json=with_layers({"type": "lstm"})).status_code == 422
    extra = with_layers({"type": "dense", "units": 10, "colour": "red"})
    assert alice.post("/v1/jobs", json=extra).status_code == 422


def test_impossible_model_is_a_422_naming_the_layer_index(alice):
    # digits images are (1, 8, 8): a 3x3 max-pool after two 3x3 valid convs leaves 4x4 -> 1x1, then
    # a pool of 5 cannot fit.
    spec = with_layers(
        {"type": "conv2d", "filters": 4, "kernel_size": 3},
        {"type": "conv2d", "filters": 4, "kernel_size": 3},
        {"type": "maxpool2d", "pool_size": 5},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    )
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert locs(response) == [["body", "model", "layers", 2]]
    assert response.json()["detail"][0]["msg"] == (
        "layer 2 (maxpool2d): field 'pool_size' = [5, 5] is larger than the input's spatial size"
        " (4, 4); the data set's samples have shape [1, 8, 8]"
    )


def test_conv_on_flat_input_is_refused_at_its_index(alice):
    spec = with_layers({"type": "flatten"}, {"type": "conv2d", "filters": 2, "kernel_size": 3})
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert locs(response) == [["body", "model", "layers", 1]]
    assert response.json()["detail"][0]["msg"] == (
        "layer 1 (conv2d): field 'kernel_size' = [3, 3] needs a (channels, height, width) input,"
        " got input shape [64]; the data set's samples have shape [1, 8, 8]"
    )


def test_a_first_layer_error_gives_the_input_shape_once(alice):
    flat_digits = {"name": "digits", "validation_split": 0.1}
    spec = with_layers({"type": "conv2d", "filters": 2, "kernel_size": 3}, dataset=flat_digits)
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "value_error",
            "loc": ["body", "model", "layers", 0],
            "msg": "layer 0 (conv2d): field 'kernel_size' = [3, 3] needs a (channels, height,"
            " width) input, got input shape [64]",
        }
    ]


def test_output_units_must_match_the_classes(alice):
    spec = with_layers({"type": "flatten"}, {"type": "dense", "units": 7})
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert locs(response) == [["body", "loss"]]
    message = response.json()["detail"][0]["msg"]
    assert "[10]" in message and "[7]" in message and "model.layers[1]" in message


def test_parameter_budget_refuses_large_models(alice):
    # 64*4096 + 4096*10 > the test budget of 100_000 parameters
    spec = with_layers(
        {"type": "flatten"}, {"type": "dense", "units": 4096}, {"type": "dense", "units": 10}
    )
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert "budget" in response.json()["detail"][0]["msg"]


def test_optimizer_options_that_do_not_apply_are_refused(alice):
    spec = digits_spec(optimizer={"type": "adam", "lr": 0.01, "momentum": 0.9})
    response = alice.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert locs(response) == [["body", "optimizer"]]


def test_unknown_uploaded_dataset_is_refused(alice):
    response = alice.post("/v1/jobs", json=digits_spec(dataset={"id": "ds_0123456789abcdef"}))
    assert response.status_code == 422
    assert locs(response) == [["body", "dataset", "id"]]


def test_active_job_limit_answers_429_with_retry_after(alice, bob):
    for _ in range(3):  # the fixture's limit
        assert alice.post("/v1/jobs", json=digits_spec()).status_code == 202
    response = alice.post("/v1/jobs", json=digits_spec())
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert bob.post("/v1/jobs", json=digits_spec()).status_code == 202  # per tenant


def test_list_is_newest_first_with_cursor_pages_and_status_filter(alice):
    ids = [alice.post("/v1/jobs", json=digits_spec()).json()["id"] for _ in range(3)]
    alice.post(f"/v1/jobs/{ids[0]}/cancel")
    first = alice.get("/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in first["jobs"]] == [ids[2], ids[1]]
    second = alice.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [j["id"] for j in second["jobs"]] == [ids[0]] and second["next_cursor"] is None
    cancelled = alice.get("/v1/jobs", params={"status": "cancelled"}).json()["jobs"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    assert alice.get("/v1/jobs", params={"status": "sleeping"}).status_code == 422
    assert alice.get("/v1/jobs", params={"limit": 0}).status_code == 422


def test_cancel_a_queued_job_then_409_once_finished(alice):
    job_id = alice.post("/v1/jobs", json=digits_spec()).json()["id"]
    response = alice.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    again = alice.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


def test_unknown_job_is_404(alice):
    assert alice.get("/v1/jobs/job_missing").status_code == 404
    assert alice.post("/v1/jobs/job_missing/cancel").status_code == 404
    assert alice.get("/v1/jobs/job_missing/events").status_code == 404


def test_another_tenants_job_is_404_for_read_cancel_events_and_list(alice, bob):
    job_id = alice.post("/v1/jobs", json=digits_spec()).json()["id"]
    assert bob.get(f"/v1/jobs/{job_id}").status_code == 404
    assert bob.post(f"/v1/jobs/{job_id}/cancel").status_code == 404
    assert bob.get(f"/v1/jobs/{job_id}/events").status_code == 404
    assert bob.get("/v1/jobs").json()["jobs"] == []
    assert alice.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_the_example_specs_are_accepted(app, alice, example):
    app.state.settings = app.state.settings.model_copy(update={"max_parameters": 20_000_000})
    response = alice.post("/v1/jobs", json=json.loads(example.read_text()))
    assert response.status_code == 202, response.text


def test_loss_options_and_early_stopping_are_checked(alice):
    smoothing = digits_spec(
        loss={"type": "cross_entropy", "label_smoothing": 0.1},
        early_stopping={"patience": 2, "monitor": "val_accuracy"},
    )
    assert alice.post("/v1/jobs", json=smoothing).status_code == 202
    wrong = digits_spec(loss={"type": "mse", "label_smoothing": 0.1})
    assert alice.post("/v1/jobs", json=wrong).status_code == 422
    no_validation = digits_spec(
        dataset={"name": "digits", "validation_split": 0.0}, early_stopping={"monitor": "val_loss"}
    )
    response = alice.post("/v1/jobs", json=no_validation)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "early_stopping"]


def test_communication_options_reach_the_stored_spec(alice):
    spec = digits_spec() | {
        "sync_every": 4, "overlap": True, "checkpoint_every": 5, "compression": "fp16",
    }  # fmt: skip

    response = alice.post("/v1/jobs", json=spec)

    assert response.status_code == 202, response.text
    record = alice.get(f"/v1/jobs/{response.json()['id']}").json()
    assert record["spec"]["sync_every"] == 4 and record["spec"]["overlap"] is True
    bad = alice.post("/v1/jobs", json=digits_spec() | {"sync_every": 0})
    assert bad.status_code == 422 and ["body", "sync_every"] in locs(bad)
    assert record["spec"]["compression"] == "fp16"
    lossy = alice.post("/v1/jobs", json=digits_spec() | {"compression": "int4"})
    assert lossy.status_code == 422 and ["body", "compression"] in locs(lossy)


def test_overlap_left_out_is_stored_unset_so_the_worker_decides_by_transport(alice):
    left_out = alice.post("/v1/jobs", json=digits_spec()).json()
    refused = alice.post("/v1/jobs", json=digits_spec() | {"overlap": False}).json()

    assert alice.get(f"/v1/jobs/{left_out['id']}").json()["spec"].get("overlap") is None
    assert alice.get(f"/v1/jobs/{refused['id']}").json()["spec"]["overlap"] is False


@pytest.mark.parametrize(
    ("where", "typo", "meant"),
    [
        ((), "epoch", "epochs"),
        ((), "batchsize", "batch_size"),
        (("optimizer",), "learning_rate", "lr"),
        (("model", "layers", 0), "unit", "units"),
    ],
)
def test_an_unknown_field_names_the_field_it_most_likely_meant(alice, where, typo, meant):
    spec = with_layers({"type": "dense", "units": 10})
    node = spec
    for part in where:
        node = node[part]
    node[typo] = node.pop(meant, 1)

    errors = alice.post("/v1/jobs", json=spec).json()["detail"]

    error = next(e for e in errors if e["type"] == "extra_forbidden")
    assert error["loc"] == ["body", *where, typo]
    assert error["ctx"]["did_you_mean"] == meant and f"did you mean '{meant}'?" in error["msg"]


def test_a_field_like_no_other_gets_no_suggestion(alice):
    spec = with_layers({"type": "dense", "units": 10}) | {"zzqx": 1}

    error = alice.post("/v1/jobs", json=spec).json()["detail"][0]

    assert error["type"] == "extra_forbidden" and "did_you_mean" not in error.get("ctx", {})

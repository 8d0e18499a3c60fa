"""Resource ids are checked at the edge: anything but ``<prefix>_<16 hex>`` is a 404 that
never reaches Redis, for every route and every tenant (issue 10)."""

from __future__ import annotations

import pytest

from tests.api.specs import digits_spec
from worker.jobs import JobStore
from worker.recovery import alive_key

SUFFIXES = [":alive", ":events", ":cancel", "*", "%00", "/../x", "_" + "f" * 300]


@pytest.fixture
def running_job(redis_client) -> str:
    """alice's job, with the ``alive`` key a running shard keeps renewed."""
    record = JobStore(redis_client).create(digits_spec(), "alice")
    redis_client.set(alive_key(record["id"]), b"1")
    return record["id"]


@pytest.mark.parametrize("suffix", [":alive", ":events", ":cancel"])
def test_a_job_id_with_a_key_suffix_is_404_for_every_tenant(alice, bob, running_job, suffix):
    answers = [client.get(f"/v1/jobs/{running_job}{suffix}") for client in (alice, bob)]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json() == answers[1].json()  # the owner learns nothing more than bob
    assert alice.get(f"/v1/jobs/{running_job}").status_code == 200


def operations(app) -> list[tuple[str, str]]:
    paths = app.openapi()["paths"]
    ids = ("{job_id}", "{model_id}", "{dataset_id}", "{study_id}")
    return [(m, p) for p, item in paths.items() if any(i in p for i in ids) for m in item]


def test_every_route_with_an_id_answers_404_for_malformed_ids(app, alice, running_job):
    checked = 0
    for method, path in operations(app):
        for suffix in SUFFIXES:
            url = (
                path.replace("{job_id}", running_job + suffix)
                .replace("{model_id}", "mdl_0123456789abcdef" + suffix)
                .replace("{dataset_id}", "ds_0123456789abcdef" + suffix)
                .replace("{study_id}", "study_0123456789abcdef" + suffix)
            )
            response = alice.request(method.upper(), url, json={"inputs": [0.0]})
            assert response.status_code == 404, (method, url, response.text)
            checked += 1
    # 7 job (get, cancel, events, metrics, delete, resume, logs), 6 model (get, patch, delete,
    # weights, predict, export), 2 data set and 4 study operations
    assert checked == 19 * len(SUFFIXES)


@pytest.mark.parametrize("bad", ["ds_0123456789abcdef:chunks", "ds_x", "DS_0123456789ABCDEF"])
def test_a_data_set_id_in_a_spec_must_be_well_formed(alice, bad):
    response = alice.post("/v1/jobs", json=digits_spec(dataset={"id": bad}))
    assert response.status_code == 422
    assert ["body", "dataset", "id"] in [e["loc"] for e in response.json()["detail"]]

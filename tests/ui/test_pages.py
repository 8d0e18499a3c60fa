"""Dashboard pages rendered by the server (no browser): contract attributes, filters, isolation."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.models_fixture import store_digits_model
from tests.ui.conftest import KEY_A, KEY_B, log_in
from worker.config import Settings
from worker.jobs import JobStore
from worker.models_store import ModelStore
from worker.storage.checkpoints import checkpoints_key

SPEC = {
    "dataset": {"name": "digits"},
    "model": {"layers": [{"type": "dense", "units": 10}]},
    "optimizer": {"type": "adam", "lr": 0.01},
    "batch_size": 32,
    "epochs": 3,
}


def test_without_keys_there_is_no_login_and_root_leads_to_the_jobs(redis_url, tmp_path):
    app = create_app(Settings(redis_url=redis_url, data_dir=tmp_path))
    JobStore(app.state.redis).create(SPEC | {"name": "mine"}, "default")
    with TestClient(app) as client:
        root = client.get("/", follow_redirects=False)
        login = client.get("/ui/login", follow_redirects=False)
        jobs = client.get("/ui/jobs")
    app.state.redis.close()

    assert root.status_code == 307 and root.headers["location"] == "/ui/jobs"
    assert login.status_code == 303 and login.headers["location"] == "/ui/jobs"
    assert jobs.status_code == 200 and 'data-testid="job-row"' in jobs.text
    assert "Log out" not in jobs.text


def test_the_jobs_table_is_newest_first_and_filters_by_status_and_name(browser, app):
    store = JobStore(app.state.redis)
    old = store.create(SPEC | {"name": "alpha-old"}, "alice")
    new = store.create(SPEC | {"name": "beta-new"}, "alice")
    store.request_cancel(old["id"])
    store.create(SPEC | {"name": "bobs"}, "bob")
    log_in(browser, KEY_A)

    listed = re.findall(r'data-job-id="([^"]+)"', browser.get("/ui/jobs").text)
    cancelled = re.findall(r'data-job-id="([^"]+)"', browser.get("/ui/jobs?status=cancelled").text)
    named = re.findall(r'data-job-id="([^"]+)"', browser.get("/ui/jobs?name=BETA").text)

    assert listed == [new["id"], old["id"]]
    assert cancelled == [old["id"]] and named == [new["id"]]


def test_the_jobs_page_pages_through_older_jobs_with_its_cursor_keeping_the_filter(browser, app):
    store = JobStore(app.state.redis)
    created = [store.create(SPEC | {"name": f"run-{i}"}, "alice")["id"] for i in range(53)]
    store.create(SPEC | {"name": "other"}, "alice")
    log_in(browser, KEY_A)

    first = browser.get("/ui/jobs?name=run").text
    older = (
        re.search(r'href="([^"]+)" data-testid="next-page"', first).group(1).replace("&amp;", "&")
    )
    second = browser.get(older).text

    listed = re.findall(r'data-job-id="([^"]+)"', first + second)
    assert listed == created[::-1]  # newest first, each once, no "other"
    assert "name=run" in older and 'data-testid="next-page"' not in second


def test_live_rows_render_only_the_callers_jobs(browser, app):
    store = JobStore(app.state.redis)
    mine = store.create(SPEC, "alice")
    theirs = store.create(SPEC, "bob")
    log_in(browser, KEY_A)

    rows = browser.get(f"/ui/jobs/rows?ids={mine['id']},{theirs['id']}").text

    assert re.findall(r'data-job-id="([^"]+)"', rows) == [mine["id"]]


def test_the_job_page_embeds_its_first_curve_and_the_contract_test_ids(browser, app):
    job = JobStore(app.state.redis).create(SPEC, "alice")
    log_in(browser, KEY_A)

    html = browser.get(f"/ui/jobs/{job['id']}").text

    for testid in ("job-status", "loss-chart", "cancel-job"):
        assert f'data-testid="{testid}"' in html
    assert 'id="initial-metrics"' in html and '"points_recorded": 0' in html


def test_the_job_page_starts_its_live_feed_after_the_last_event_it_rendered(browser, app):
    store = JobStore(app.state.redis)
    job = store.create(SPEC, "alice")
    store.transition(job["id"], "running")
    store.update(job["id"], {"step": 1})
    last = store.events(job["id"])[-1][0]
    log_in(browser, KEY_A)

    html = browser.get(f"/ui/jobs/{job['id']}").text

    assert f'data-events-after="{last}"' in html
    assert "running" in re.search(r'<ol class="timeline".*?</ol>', html, re.S).group(0)


def test_a_job_page_offers_resume_exactly_when_the_resume_endpoint_would_accept_it(browser, app):
    store = JobStore(app.state.redis)
    queued, cancelled, saved, failed = (store.create(SPEC, "alice") for _ in range(4))
    for job in (cancelled, saved):
        store.request_cancel(job["id"])  # queued: cancelled at once
    store.transition(failed["id"], "failed", "training failed", expect_attempt=0)
    for job in (saved, failed):  # a checkpoint the resume can start from
        app.state.redis.rpush(checkpoints_key(job["id"]), f"checkpoints/{job['id']}/1")
    csrf = log_in(browser, KEY_A)

    def offered(job_id: str) -> bool:
        html = browser.get(f"/ui/jobs/{job_id}").text
        button = re.search(r'<button[^>]*data-testid="resume-job"[^>]*>', html).group(0)
        return "hidden" not in button

    def resumable_says(job_id: str) -> bool:
        return browser.get(f"/v1/jobs/{job_id}").json()["resumable"]

    # before: a cancelled job without any checkpoint offered Resume, which answered 409
    assert [offered(job["id"]) for job in (queued, cancelled, saved, failed)] == [
        False,
        False,
        True,
        True,
    ]
    # the page's live updates read the same rule from the record
    assert [resumable_says(job["id"]) for job in (queued, cancelled, saved, failed)] == [
        False,
        False,
        True,
        True,
    ]
    refused = browser.post(
        f"/v1/jobs/{cancelled['id']}/resume", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert refused.status_code == 409 and "no checkpoint" in refused.json()["detail"]


def test_a_one_shard_job_page_says_why_it_has_no_communication_chart(browser, app):
    store = JobStore(app.state.redis)
    one, two = store.create(SPEC, "alice"), store.create(SPEC | {"shards": 2}, "alice")
    log_in(browser, KEY_A)

    single = browser.get(f"/ui/jobs/{one['id']}").text
    sharded = browser.get(f"/ui/jobs/{two['id']}").text

    assert 'id="comm-none"' in single and 'id="comm-chart"' not in single
    assert 'id="comm-chart"' in sharded and 'id="comm-none"' not in sharded


def test_the_new_job_editor_is_prefilled_and_clones_a_job(browser, app):
    job = JobStore(app.state.redis).create(SPEC | {"name": "to-clone"}, "alice")
    log_in(browser, KEY_A)

    fresh = browser.get("/ui/jobs/new").text
    clone = browser.get(f"/ui/jobs/new?clone={job['id']}").text

    assert 'data-testid="spec-editor"' in fresh and "digits-mlp" in fresh
    assert "to-clone" in clone
    assert 'data-testid="submit-job"' in fresh and 'data-testid="spec-errors"' in fresh


def test_the_model_page_lists_layers_and_offers_the_canvas(browser, app):
    model = store_digits_model(app.state.redis, "alice")
    log_in(browser, KEY_A)

    html = browser.get(f"/ui/models/{model['id']}").text

    assert 'data-testid="digit-canvas"' in html and 'data-testid="prediction"' in html
    assert "[32]" in html and "2,080" in html  # dense 64->32: output shape, 64*32+32 parameters


def test_the_canvas_asks_for_a_digit_only_on_digit_models(browser, app):
    from tests.api.models_fixture import trained_digits_model

    model = trained_digits_model(as_image=True)[0]
    store = ModelStore(app.state.redis)
    saved = {
        name: store.save(model, tenant="alice", name=name, job_id=None, num_classes=10,
                         dataset={"name": name})["id"]
        for name in ("mnist", "fashion-mnist")
    }  # fmt: skip
    log_in(browser, KEY_A)

    digits = browser.get(f"/ui/models/{saved['mnist']}").text
    clothes = browser.get(f"/ui/models/{saved['fashion-mnist']}").text

    assert "Draw a digit" in digits
    assert "Draw a piece of clothing" in clothes and "digit</h2>" not in clothes
    assert 'data-testid="digit-canvas"' in clothes  # the contract attribute stays


def test_another_tenants_model_and_data_pages_are_404s(browser, app):
    model = store_digits_model(app.state.redis, "alice")
    log_in(browser, KEY_B)

    assert browser.get(f"/ui/models/{model['id']}").status_code == 404
    assert browser.get("/ui/datasets/ds_0000000000000000").status_code == 404


def test_compare_shows_the_differing_spec_fields_and_exports_every_job(browser, app):
    store = JobStore(app.state.redis)
    a = store.create(SPEC | {"name": "a"}, "alice")
    b = store.create(SPEC | {"name": "b", "epochs": 7}, "alice")
    store.update(b["id"], {"history": [{"epoch": 1, "train_loss": 0.5, "val_accuracy": 0.9}]})
    log_in(browser, KEY_A)

    html = browser.get(f"/ui/compare?jobs={a['id']},{b['id']}").text
    csv = browser.get(f"/ui/compare.csv?jobs={a['id']},{b['id']}").text

    assert 'data-testid="compare-chart"' in html
    assert re.search(
        r'<td class="mono">epochs</td><td class="mono">3</td><td class="mono">7</td>', html
    )
    assert f"{b['id']},val_accuracy,,1,0.9" in csv


def test_compare_of_another_tenants_jobs_is_a_404_and_their_csv_too(browser, app):
    store = JobStore(app.state.redis)
    mine, theirs = store.create(SPEC, "alice"), store.create(SPEC, "bob")
    log_in(browser, KEY_A)

    only_theirs = browser.get(f"/ui/compare?jobs={theirs['id']}")
    both = browser.get(f"/ui/compare?jobs={mine['id']},{theirs['id']}")
    csv = browser.get(f"/ui/compare.csv?jobs={mine['id']},{theirs['id']}")

    assert only_theirs.status_code == 404 and f"Not found: {theirs['id']}" in only_theirs.text
    assert both.status_code == 200 and re.findall(r'href="/ui/jobs/(job_[^"]+)"', both.text) == [
        mine["id"]
    ]
    assert csv.status_code == 404 and theirs["id"] in csv.json()["detail"]


def test_docs_are_served_from_local_assets(browser):
    html = browser.get("/docs").text
    script = browser.get("/ui/static/vendor/swagger-ui/swagger-ui-bundle.js")

    assert "/ui/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and script.status_code == 200


def test_pages_answer_404_for_ids_of_the_wrong_format_before_touching_redis(browser, app):
    job = JobStore(app.state.redis).create(SPEC, "alice")
    # a key-suffix id used to reach another Redis key (gradq:job:{id}:alive) through the API
    app.state.redis.set(f"gradq:job:{job['id']}:alive", "1")
    log_in(browser, KEY_A)

    for url in (
        f"/ui/jobs/{job['id']}:alive",
        "/ui/models/mdl_x:weights",
        "/ui/datasets/ds_../x",
    ):
        assert browser.get(url).status_code == 404, url
    compared = browser.get(f"/ui/compare?jobs={job['id']}:alive,{job['id']}")
    assert compared.status_code == 200
    assert re.findall(r'data-job-id="([^"]+)"', compared.text) in ([job["id"]], [])


def test_a_cursor_the_jobs_page_did_not_hand_out_is_named_not_shown_as_no_jobs(browser, app):
    JobStore(app.state.redis).create(SPEC, "alice")
    log_in(browser, KEY_A)

    page = browser.get("/ui/jobs?cursor=not-a-cursor")

    assert page.status_code == 200
    assert 'data-testid="cursor-error"' in page.text and "cursor:" in page.text
    assert "No jobs" not in page.text

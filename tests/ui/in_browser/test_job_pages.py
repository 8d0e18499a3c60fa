"""Jobs in a real browser: login, the editor, live charts, cancel and resume, compare,
isolation, and every page loading nothing from other hosts. Screenshots: tests/ui/browser.py."""

from __future__ import annotations

import json

import pytest

from tests.harness import wait_until
from tests.ui.browser import chromium_available, screenshot
from tests.ui.in_browser.helpers import KEY_A, KEY_B, digits_spec, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed"),
]


def test_login_refuses_a_wrong_key_and_accepts_a_right_one(page):
    page.goto("/ui/jobs")
    assert "/ui/login" in page.url

    page.fill('input[name="api_key"]', "not-a-key")
    page.click('button[type="submit"]')
    error = page.get_by_test_id("login-error").text_content()
    screenshot(page, "login-wrong-key")
    page.fill('input[name="api_key"]', KEY_A)
    page.click('button[type="submit"]')
    page.wait_for_url("**/ui/jobs")

    assert "unknown API key" in error
    assert page.locator("h1").text_content() == "Jobs"
    cookie = next(c for c in page.context.cookies() if c["name"] == "gradq_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and KEY_A not in cookie["value"]


def test_the_editor_shows_a_422_next_to_the_spec_then_submits(page):
    log_in(page, KEY_A)
    page.goto("/ui/jobs/new")
    spec = json.loads(page.get_by_test_id("spec-editor").input_value())
    spec["model"]["layers"][-1]["units"] = 3  # digits have 10 classes: the API names the layer

    page.get_by_test_id("spec-editor").fill(json.dumps(spec, indent=2))
    page.get_by_test_id("submit-job").click()
    errors = page.get_by_test_id("spec-errors")
    errors.locator("li").first.wait_for()
    screenshot(page, "new-job-422")
    text = errors.text_content()
    spec["model"]["layers"][-1]["units"] = 10
    spec["epochs"] = 2
    page.get_by_test_id("spec-editor").fill(json.dumps(spec))
    page.get_by_test_id("submit-job").click()
    page.wait_for_url("**/ui/jobs/job_*")

    assert "model.layers" in text and "10" in text
    assert page.get_by_test_id("job-status").text_content() in (
        "queued",
        "running",
        "succeeded",
    )


def test_the_loss_chart_gains_points_while_the_job_runs_and_ends_succeeded(page, stack, live_job):
    stack.wait_for_status(KEY_A, live_job, ("running",))
    log_in(page, KEY_A)
    page.goto(f"/ui/jobs/{live_job}")
    chart = page.get_by_test_id("loss-chart")
    status = page.get_by_test_id("job-status")

    first = wait_until(lambda: int(chart.get_attribute("data-points")), 30, "a first point")
    later = wait_until(
        lambda: (n := int(chart.get_attribute("data-points"))) > first and n,
        30,
        "the chart to gain points",
    )
    status_then = status.text_content()
    screenshot(page, "job-running")
    wait_until(lambda: status.text_content() == "succeeded", 180, "succeeded on the page")
    with stack.api(KEY_A) as api:
        recorded = api.get(f"/v1/jobs/{live_job}/metrics").json()["points_recorded"]
    wait_until(lambda: int(chart.get_attribute("data-points")) == recorded, 10, "the last points")
    screenshot(page, "job-succeeded")

    assert status_then in ("running", "succeeded") and later > first
    assert page.locator("#model-link").is_visible()


def test_a_running_row_updates_live_then_cancel_from_the_job_page(page, stack, live_job):
    stack.wait_for_status(KEY_A, live_job, ("succeeded",))  # one job at a time on 2 cores
    with stack.api(KEY_A) as api:
        job_id = api.post("/v1/jobs", json=digits_spec("digits-cancel", 500)).json()["id"]
    stack.wait_for_status(KEY_A, job_id, ("running",))
    log_in(page, KEY_A)
    row = page.locator(f'tr[data-job-id="{job_id}"] .progress-cell')
    before = row.text_content()
    wait_until(lambda: row.text_content() != before, 30, "the running row to move on its own")
    screenshot(page, "jobs-running")
    page.goto(f"/ui/jobs/{job_id}")

    page.get_by_test_id("cancel-job").click()
    status = page.get_by_test_id("job-status")
    wait_until(lambda: status.text_content() == "cancelled", 60, "cancelled on the page")
    screenshot(page, "job-cancelled")

    assert stack.wait_for_status(KEY_A, job_id, ("cancelled",))["status"] == "cancelled"
    assert page.get_by_test_id("cancel-job").is_disabled()


def test_a_cancelled_job_resumes_from_its_page(page, stack, live_job):
    stack.wait_for_status(KEY_A, live_job, ("succeeded",))
    with stack.api(KEY_A) as api:
        job_id = api.post("/v1/jobs", json=digits_spec("digits-resume", 500)).json()["id"]
        # a checkpoint exists once an epoch ended: only then is there something to resume
        wait_until(lambda: api.get(f"/v1/jobs/{job_id}").json()["epoch"] >= 1, 60, "epoch 1")
    log_in(page, KEY_A)
    page.goto(f"/ui/jobs/{job_id}")
    status = page.get_by_test_id("job-status")
    resume = page.get_by_test_id("resume-job")
    resume_hidden_while_running = resume.is_hidden()

    page.get_by_test_id("cancel-job").click()  # one click cancels: Resume is the way back
    wait_until(lambda: status.text_content() == "cancelled", 60, "cancelled on the page")
    resume.wait_for()
    screenshot(page, "job-resumable")
    resume.click()
    wait_until(lambda: status.text_content() in ("queued", "running"), 30, "resumed on the page")
    timeline = page.locator("#timeline").text_content()
    with stack.api(KEY_A) as api:
        resumed = api.get(f"/v1/jobs/{job_id}").json()
        api.post(f"/v1/jobs/{job_id}/cancel")  # 500 epochs: free the worker for the next tests
    stack.wait_for_status(KEY_A, job_id, ("cancelled",))

    assert resume_hidden_while_running
    # resumed from its checkpoint, not from epoch 0
    assert resumed["status"] in ("queued", "running") and resumed["epoch"] >= 1
    assert timeline.index("cancelled") < timeline.rindex("queued")


def test_a_queued_job_page_shows_its_start_time_when_it_starts(page, stack, live_job):
    stack.wait_for_status(KEY_A, live_job, ("succeeded",))
    with stack.api(KEY_A) as api:  # a 2-shard job holds both worker slots: the next one queues
        blocker = api.post("/v1/jobs", json=digits_spec("blocker", 500) | {"shards": 2}).json()
        stack.wait_for_status(KEY_A, blocker["id"], ("running",))
        job_id = api.post("/v1/jobs", json=digits_spec("digits-queued", 500)).json()["id"]
        log_in(page, KEY_A)
        page.goto(f"/ui/jobs/{job_id}")
        started = page.get_by_test_id("job-started")
        while_queued = started.text_content()
        api.post(f"/v1/jobs/{blocker['id']}/cancel")
        wait_until(lambda: started.text_content() != while_queued, 60, "the start time")
        api.post(f"/v1/jobs/{job_id}/cancel")
        record = stack.wait_for_status(KEY_A, job_id, ("cancelled",))

    assert page.get_by_test_id("job-status").text_content() != "queued"
    assert while_queued == "—"
    assert started.text_content() == record["started_at"].replace("T", " ")[:19]


def test_compare_two_jobs_ticked_on_the_jobs_page(page, stack, live_job, short_job):
    stack.wait_for_status(KEY_A, live_job, ("succeeded",))
    log_in(page, KEY_A)
    screenshot(page, "jobs")

    for job_id in (live_job, short_job):
        page.locator(f'tr[data-job-id="{job_id}"] input.pick').check()
    page.locator("#compare").click()
    page.wait_for_url("**/ui/compare?jobs=*")
    chart = page.get_by_test_id("compare-chart")
    wait_until(lambda: chart.get_attribute("data-series") == "2", 20, "two series drawn")
    screenshot(page, "compare")
    csv = page.request.get(page.get_by_test_id("compare-csv").get_attribute("href")).text()

    assert {live_job, short_job} <= {line.split(",")[0] for line in csv.splitlines()[1:]}
    assert page.locator("table.diff").text_content().count("epochs") == 1


def test_another_tenants_job_page_is_a_404(page, live_job):
    log_in(page, KEY_B)

    response = page.goto(f"/ui/jobs/{live_job}")
    screenshot(page, "not-found")

    assert response.status == 404
    assert "not found" in page.get_by_test_id("not-found").text_content()


def test_the_other_pages_render_and_load_nothing_from_other_hosts(page, stack, live_job):
    record = stack.wait_for_status(KEY_A, live_job, ("succeeded",))
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    log_in(page, KEY_A)

    for name, path in (("models", "/ui/models"), ("new-job", "/ui/jobs/new"), ("docs", "/docs")):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        if name == "models":
            rows = page.get_by_test_id("model-row").count()
        screenshot(page, name)
    page.locator(".swagger-ui .opblock").first.wait_for()

    assert [url for url in requested if not url.startswith(stack.url)] == []
    assert stack.url + "/ui/static/vendor/swagger-ui/swagger-ui-bundle.js" in requested
    assert rows >= 1 and record["model_id"]


def test_swagger_ui_authorises_with_an_api_key_and_its_calls_carry_it(page):
    page.goto("/docs")  # a fresh context: no dashboard session, only what Authorize sets
    page.locator(".swagger-ui .auth-wrapper button.authorize").click()
    page.locator(".dialog-ux input[type=text]").fill(KEY_A)
    page.locator(".dialog-ux button.authorize").click()
    page.locator(".dialog-ux button.btn-done").click()
    listing = page.locator(".opblock-get", has=page.locator('[data-path="/v1/jobs"]')).first
    listing.locator(".opblock-summary").first.click()
    listing.locator("button.try-out__btn").click()
    listing.locator("button.execute").click()
    status = listing.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    screenshot(page, "docs-authorized")

    assert status.text_content().strip() == "200"
    assert f"Authorization: Bearer {KEY_A}" in listing.locator(".curl-command").text_content()


def test_a_job_cancelled_before_its_first_checkpoint_offers_no_resume(page, stack, live_job):
    stack.wait_for_status(KEY_A, live_job, ("succeeded",))  # one job at a time on 2 cores
    # 45,000 steps in its first epoch: cancelled long before the first checkpoint
    spec = digits_spec("blobs-no-checkpoint", 1) | {
        "dataset": {"name": "blobs", "size": 1_000_000, "features": 16, "classes": 10}
    }
    with stack.api(KEY_A) as api:
        submitted = api.post("/v1/jobs", json=spec)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    stack.wait_for_status(KEY_A, job_id, ("running",))
    log_in(page, KEY_A)
    page.goto(f"/ui/jobs/{job_id}")

    page.get_by_test_id("cancel-job").click()
    status = page.get_by_test_id("job-status")
    wait_until(lambda: status.text_content() == "cancelled", 60, "cancelled on the page")
    with stack.api(KEY_A) as api:
        record = api.get(f"/v1/jobs/{job_id}").json()
        refused = api.post(f"/v1/jobs/{job_id}/resume", json={})

    # before: the live status event showed Resume for any cancelled job; clicking it gave 409
    assert record["status_reason"] == "cancelled; no checkpoint to resume from"
    assert record["resumable"] is False and refused.status_code == 409
    assert page.get_by_test_id("resume-job").is_hidden()

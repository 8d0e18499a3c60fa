"""Dashboard login: a key buys an HttpOnly SameSite=Strict session; state changes need CSRF."""

from __future__ import annotations

from tests.ui.conftest import KEY_A, KEY_B, log_in

SPEC = {
    "dataset": {"name": "digits"},
    "model": {"layers": [{"type": "dense", "units": 10}]},
    "optimizer": {"type": "adam", "lr": 0.01},
    "batch_size": 32,
    "epochs": 1,
}


def test_pages_without_a_session_redirect_to_the_login_form(browser):
    response = browser.get("/ui/jobs?status=running", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fjobs%3Fstatus%3Drunning"


def test_a_wrong_key_is_refused_on_the_form_and_sets_no_cookie(browser):
    response = browser.post("/ui/login", data={"api_key": "not-a-key"}, follow_redirects=False)

    assert response.status_code == 401
    assert "unknown API key" in response.text
    assert "set-cookie" not in response.headers


def test_a_known_key_sets_a_session_cookie_that_holds_no_key(browser):
    response = browser.post("/ui/login", data={"api_key": KEY_A}, follow_redirects=False)

    cookie = response.headers["set-cookie"]
    assert response.status_code == 303 and response.headers["location"] == "/ui/jobs"
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=600" in cookie
    assert KEY_A not in cookie
    assert browser.get("/v1/jobs").status_code == 200  # the API accepts the session


def test_login_only_redirects_to_dashboard_pages(browser):
    response = browser.post(
        "/ui/login", data={"api_key": KEY_A, "next": "//evil.example/ui"}, follow_redirects=False
    )

    assert response.headers["location"] == "/ui/jobs"


def test_a_post_with_the_session_but_no_csrf_token_is_refused(browser):
    log_in(browser, KEY_A)

    response = browser.post("/v1/jobs", json=SPEC)

    assert response.status_code == 403
    assert "X-CSRF-Token" in response.json()["detail"]


def test_a_post_with_the_session_and_its_csrf_token_is_accepted(browser):
    token = log_in(browser, KEY_A)

    response = browser.post("/v1/jobs", json=SPEC, headers={"X-CSRF-Token": token})

    assert response.status_code == 202


def test_a_post_from_another_origin_is_refused_even_with_the_token(browser):
    token = log_in(browser, KEY_A)

    response = browser.post(
        "/v1/jobs",
        json=SPEC,
        headers={"X-CSRF-Token": token, "Origin": "http://evil.example"},
    )

    assert response.status_code == 403 and "Origin" in response.json()["detail"]


def test_logout_ends_the_session_on_the_server(browser):
    token = log_in(browser, KEY_A)
    session_id = browser.cookies["gradq_session"]

    browser.post("/ui/logout", data={"csrf_token": token}, follow_redirects=False)
    browser.cookies.set("gradq_session", session_id)  # a copied cookie is worthless now

    assert browser.get("/v1/jobs").status_code == 401


def test_another_tenants_job_page_is_a_404(browser, app):
    from worker.jobs import JobStore

    bobs = JobStore(app.state.redis).create(SPEC, "bob")
    log_in(browser, KEY_A)

    page = browser.get(f"/ui/jobs/{bobs['id']}")
    metrics = browser.get(f"/v1/jobs/{bobs['id']}/metrics")

    assert page.status_code == 404 and "not found" in page.text
    assert metrics.status_code == 404


def test_the_owner_sees_the_job_page(browser, app):
    from worker.jobs import JobStore

    bobs = JobStore(app.state.redis).create(SPEC, "bob")
    log_in(browser, KEY_B)

    page = browser.get(f"/ui/jobs/{bobs['id']}")

    assert page.status_code == 200
    assert 'data-testid="job-status"' in page.text and ">queued<" in page.text

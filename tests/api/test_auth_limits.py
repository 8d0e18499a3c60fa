"""Bearer keys and tenants, the keys file, the loopback rule, and request limits."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli.main import app as cli
from api.keys import KeyRing, hash_key
from api.serve import InsecureBindError, check_bind
from tests.api.specs import digits_spec
from worker.config import Settings


def test_missing_or_unknown_key_is_401_with_bearer_challenge(anonymous, app):
    response = anonymous.get("/v1/jobs")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "Authorization" in response.json()["detail"]
    with TestClient(app, headers={"Authorization": "Bearer nope"}) as wrong:
        assert wrong.get("/v1/models").status_code == 401
    with TestClient(app, headers={"Authorization": "Basic abc"}) as basic:
        assert basic.get("/v1/datasets").status_code == 401


def test_health_needs_no_key(anonymous):
    assert anonymous.get("/healthz").json() == {"status": "ok"}


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(tmp_path, redis_url):
    keys_file = tmp_path / "keys"
    result = CliRunner().invoke(cli, ["keys", "create", "carol", "--keys-file", str(keys_file)])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    stored = keys_file.read_text()
    assert key not in stored and stored.split() == ["carol", hash_key(key)]
    assert keys_file.stat().st_mode & 0o077 == 0
    application = create_app(Settings(redis_url=redis_url, api_keys_file=keys_file))
    with TestClient(application, headers={"Authorization": f"Bearer {key}"}) as carol:
        assert carol.get("/v1/jobs").status_code == 200
    with TestClient(application, headers={"Authorization": "Bearer gq_other"}) as stranger:
        assert stranger.get("/v1/jobs").status_code == 401


def test_keys_create_refuses_a_bad_tenant_name(tmp_path):
    result = CliRunner().invoke(cli, ["keys", "create", "a b", "--keys-file", str(tmp_path / "k")])
    assert result.exit_code == 2 and not (tmp_path / "k").exists()


def test_keyring_sees_keys_appended_to_the_file(tmp_path, monkeypatch):
    from api import keys as keys_module

    monkeypatch.setattr(keys_module, "RELOAD_SECONDS", 0.0)
    keys_file = tmp_path / "keys"
    ring = KeyRing(keys_file)
    assert not ring.configured
    key = keys_module.create_key(keys_file, "dave")
    assert ring.configured and ring.tenant_for(key) == "dave"
    assert ring.tenant_for(key + "x") is None


def test_env_pairs_define_tenants():
    ring = KeyRing(None, "t1:k1, t2:k2")
    assert (ring.tenant_for("k1"), ring.tenant_for("k2"), ring.tenant_for("k3")) == (
        "t1",
        "t2",
        None,
    )
    with pytest.raises(ValueError, match="tenant:key"):
        KeyRing(None, "justakey")


def test_without_keys_the_api_is_open_as_tenant_default(redis_url):
    with TestClient(create_app(Settings(redis_url=redis_url))) as client:
        assert client.get("/v1/jobs").status_code == 200


def test_no_keys_serves_only_on_loopback_unless_insecure(redis_url):
    open_settings = Settings(redis_url=redis_url)
    assert "WITHOUT authentication" in check_bind("127.0.0.1", open_settings)
    assert "WITHOUT authentication" in check_bind("::1", open_settings)
    with pytest.raises(InsecureBindError, match="--insecure"):
        check_bind("0.0.0.0", open_settings)
    assert "WARNING" in check_bind("0.0.0.0", open_settings, insecure=True)
    keyed = Settings(redis_url=redis_url, api_keys="a:b")
    assert "keys required" in check_bind("0.0.0.0", keyed)


def test_serve_command_refuses_an_open_public_address(monkeypatch):
    monkeypatch.delenv("GRADQ_API_KEYS", raising=False)
    monkeypatch.delenv("GRADQ_API_KEYS_FILE", raising=False)
    from worker.config import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    get_settings.cache_clear()
    assert result.exit_code == 2 and "--insecure" in result.output


def test_body_over_the_limit_is_413_by_content_length(alice):
    big = digits_spec(name="x" * 10)
    body = ('{"pad": "' + "y" * 70_000 + '"}').encode()
    response = alice.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert alice.post("/v1/jobs", json=big).status_code == 202


def test_body_over_the_limit_is_413_when_streamed_without_length(alice):
    def chunks():
        for _ in range(100):
            yield b"z" * 1024

    response = alice.post(
        "/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_every_v1_and_v2_model_operation_needs_a_key(app, anonymous):
    """Walk the OpenAPI document: each /v1 and /v2/models operation answers 401 without a key."""
    paths = app.openapi()["paths"]
    operations = [
        (method, path)
        for path, item in paths.items()
        if path.startswith(("/v1/", "/v2/models"))
        for method in item
    ]
    # /v1/jobs 9 (metrics, logs, resume ... included), /v1/models 14 (each ref route twice: by id
    # and by name/versions/n), /v1/registry 4 (names, one name, alias put/delete), /v1/datasets 4,
    # /v1/studies 6, /v2/models 6
    assert len(operations) == 9 + 14 + 4 + 4 + 6 + 6
    for method, path in operations:
        # well-formed ids: the key check, not the id-format check, must answer
        url = path.replace("{job_id}", "job_" + "0" * 16).replace("{model_id}", "mdl_" + "0" * 16)
        url = url.replace("{dataset_id}", "ds_" + "0" * 16).replace("{name}", "n")
        url = url.replace("{version}", "1").replace("{alias}", "a")
        url = url.replace("{study_id}", "study_" + "0" * 16)
        response = anonymous.request(method.upper(), url)
        assert response.status_code == 401, (method, path, response.status_code)

"""The keys file fails closed: the last good key set stays in force, never `default` (issue 10)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from api import keys as keys_module
from api.app import create_app
from api.keys import KeyRing, create_key
from api.serve import InsecureBindError, check_bind
from worker.config import Settings


@pytest.fixture
def keys_file(tmp_path, monkeypatch):
    monkeypatch.setattr(keys_module, "RELOAD_SECONDS", 0.0)  # re-read on every request
    return tmp_path / "keys"


@pytest.fixture
def api(redis_url, keys_file):
    key = create_key(keys_file, "carol")
    app = create_app(Settings(redis_url=redis_url, api_keys_file=keys_file))
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {key}"}


def test_a_keys_file_renamed_away_keeps_its_keys_and_stays_closed(api, keys_file, caplog):
    client, carol = api
    keys_file.rename(keys_file.with_suffix(".moved"))
    with caplog.at_level(logging.ERROR, logger="gradq.api.keys"):
        assert client.get("/v1/jobs").status_code == 401  # not tenant `default`
        assert client.get("/v1/jobs", headers=carol).status_code == 200
    assert "is gone" in caplog.text


def test_a_malformed_line_keeps_the_last_good_keys_and_is_logged(api, keys_file, caplog):
    client, carol = api
    dave = create_key(keys_file, "dave")
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {dave}"}).status_code == 200
    with keys_file.open("a") as out:
        out.write("this line is not a key\n")
    erin = create_key(keys_file, "erin")
    with caplog.at_level(logging.ERROR, logger="gradq.api.keys"):
        for headers in (carol, {"Authorization": f"Bearer {dave}"}):
            assert client.get("/v1/jobs", headers=headers).status_code == 200
        erin_header = {"Authorization": f"Bearer {erin}"}
        assert client.get("/v1/jobs", headers=erin_header).status_code == 401
        assert client.get("/v1/jobs").status_code == 401
    assert "line 3" in caplog.text and "keeping the last good keys" in caplog.text
    keys_file.write_text("\n".join(keys_file.read_text().splitlines()[:2] + [""]))
    keys_file.write_text(keys_file.read_text() + f"erin {keys_module.hash_key(erin)}\n")
    assert client.get("/v1/jobs", headers=erin_header).status_code == 200  # mended: re-read


def test_an_emptied_keys_file_answers_401_not_default(api, keys_file):
    client, carol = api
    keys_file.write_text("")
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/v1/jobs", headers=carol).status_code == 401  # revoking all is allowed


def test_a_malformed_keys_file_at_start_refuses_to_start(keys_file, redis_url):
    keys_file.write_text("alice not-a-hash\n")
    with pytest.raises(ValueError, match="keys file .* line 1"):
        KeyRing(keys_file)
    settings = Settings(redis_url=redis_url, api_keys_file=keys_file)
    with pytest.raises(InsecureBindError, match="refusing to serve: API keys file .* line 1"):
        check_bind("127.0.0.1", settings)  # what `gradq serve` and `gradq up` check first

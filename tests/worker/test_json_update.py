"""update_json: one read-change-write of a JSON document, retried when another writer wins."""

from __future__ import annotations

import json

import pytest

from worker.json_update import update_json

KEY = "gradq:test:doc"


def stored(redis_client) -> dict:
    return json.loads(redis_client.get(KEY))


def test_a_write_between_read_and_commit_makes_the_change_run_again_on_the_new_value(
    redis_client,
):
    redis_client.set(KEY, json.dumps({"count": 0, "tags": []}))
    seen = []

    def add_one(doc: dict) -> dict:
        seen.append(doc["count"])
        if len(seen) == 1:  # another client commits while this change is being computed
            redis_client.set(KEY, json.dumps({"count": 10, "tags": ["theirs"]}))
        return doc | {"count": doc["count"] + 1}

    written = update_json(redis_client, KEY, add_one)

    assert seen == [0, 10]
    assert written == stored(redis_client) == {"count": 11, "tags": ["theirs"]}


def test_commands_queued_by_also_commit_with_the_document(redis_client):
    redis_client.set(KEY, json.dumps({"status": "queued"}))

    def index(pipe, doc: dict) -> None:
        pipe.sadd("gradq:test:index", doc["status"])

    update_json(redis_client, KEY, lambda doc: doc | {"status": "running"}, index)

    assert stored(redis_client)["status"] == "running"
    assert redis_client.smembers("gradq:test:index") == {b"running"}


def test_a_declined_change_writes_nothing_and_queues_nothing(redis_client):
    redis_client.set(KEY, json.dumps({"status": "done"}))
    queued = []

    result = update_json(redis_client, KEY, lambda doc: None, lambda pipe, doc: queued.append(1))

    assert result is None and queued == []
    assert stored(redis_client) == {"status": "done"}


def test_an_error_raised_by_the_change_propagates_and_nothing_is_written(redis_client):
    redis_client.set(KEY, json.dumps({"epochs": 5}))

    def refuse(doc: dict) -> dict:
        doc["epochs"] = 3
        raise ValueError("epochs: 3 is fewer than 5")

    with pytest.raises(ValueError, match="epochs"):
        update_json(redis_client, KEY, refuse)
    assert stored(redis_client) == {"epochs": 5}


def test_a_missing_key_returns_none_or_raises_the_given_error_without_calling_change(
    redis_client,
):
    called = []

    def change(doc: dict) -> dict:
        called.append(doc)
        return doc

    assert update_json(redis_client, KEY, change) is None
    with pytest.raises(KeyError, match="job_1"):
        update_json(redis_client, KEY, change, missing=KeyError("job_1"))
    assert called == [] and not redis_client.exists(KEY)


def test_a_write_to_a_watched_key_makes_the_change_decide_again(redis_client):
    redis_client.set(KEY, json.dumps({"status": "cancelled"}))
    redis_client.set("gradq:test:dataset", "1")
    seen = []

    def resume_if_the_set_exists(doc: dict) -> dict | None:
        seen.append(bool(redis_client.exists("gradq:test:dataset")))
        if len(seen) == 1:  # deleted after this attempt looked
            redis_client.delete("gradq:test:dataset")
        return doc | {"status": "queued"} if seen[-1] else None

    result = update_json(redis_client, KEY, resume_if_the_set_exists, watch=("gradq:test:dataset",))

    assert seen == [True, False] and result is None
    assert stored(redis_client) == {"status": "cancelled"}

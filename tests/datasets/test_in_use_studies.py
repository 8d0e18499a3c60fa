"""A data set is not deleted while a running study may train trials on it, and a study is not
created on a deleted set, in either order (real redis-server; the worst interleavings forced)."""

from __future__ import annotations

import pytest

import worker.datasets.in_use
import worker.studies.store
from tests.datasets.test_in_use import spec_on, stored_set
from worker.admission import DatasetGoneError
from worker.datasets import DatasetStore
from worker.datasets.in_use import DatasetInUseError, delete_unless_in_use
from worker.studies.store import RUNNING_KEY, StudyStore


def study_on(dataset_id: str, **space) -> dict:
    """A study request whose base spec trains on ``dataset_id``."""
    return {"name": "on-upload", "base_spec": spec_on(dataset_id), "space": space}


def test_delete_names_every_running_study_on_the_set_and_keeps_it(redis_client):
    dataset_id, other_id = stored_set(redis_client), stored_set(redis_client)
    studies = StudyStore(redis_client)
    on_base = studies.create("acme", study_on(dataset_id))["id"]
    choice = {"type": "categorical", "choices": [other_id, dataset_id]}
    in_space = studies.create("acme", study_on(other_id, **{"dataset.id": choice}))["id"]
    ended = studies.create("acme", study_on(dataset_id))["id"]
    studies.update(ended, {"status": "cancelled"})
    studies.create("acme", study_on(other_id))
    store = DatasetStore(redis_client)

    with pytest.raises(DatasetInUseError) as refused:
        delete_unless_in_use(store, dataset_id)

    assert refused.value.studies == sorted([on_base, in_space]) and refused.value.jobs == []
    assert on_base in str(refused.value) and in_space in str(refused.value)
    assert store.info(dataset_id) is not None
    studies.update(on_base, {"status": "succeeded"})
    studies.update(in_space, {"status": "failed"})
    assert delete_unless_in_use(store, dataset_id) is True
    assert store.info(dataset_id) is None


def test_a_study_on_a_set_deleted_before_it_is_refused_and_not_stored(redis_client):
    dataset_id = stored_set(redis_client)
    assert delete_unless_in_use(DatasetStore(redis_client), dataset_id) is True

    with pytest.raises(DatasetGoneError, match=dataset_id):
        StudyStore(redis_client).create("acme", study_on(dataset_id))

    assert redis_client.smembers(RUNNING_KEY) == set()
    assert StudyStore(redis_client).list("acme") == ([], None)


def test_a_study_created_after_the_deletes_check_makes_the_delete_refuse(redis_client, monkeypatch):
    """Delete first: right after it read the set's users (none), a study on the set is stored.
    Its commit must fail (the WATCH on the running studies fires) and its retry name the study."""
    dataset_id = stored_set(redis_client)
    created = []

    def check_then_create(redis, used_id):
        users = real_studies_using(redis, used_id)
        if not created:
            created.append(StudyStore(redis_client).create("acme", study_on(dataset_id))["id"])
        return users

    real_studies_using = worker.datasets.in_use.studies_using
    monkeypatch.setattr(worker.datasets.in_use, "studies_using", check_then_create)

    with pytest.raises(DatasetInUseError) as refused:
        delete_unless_in_use(DatasetStore(redis_client), dataset_id)

    assert refused.value.studies == created
    assert DatasetStore(redis_client).info(dataset_id) is not None


def test_a_delete_after_the_studys_check_makes_the_study_refused(redis_client, monkeypatch):
    """Study first: right after it found the set, the set is deleted (no study uses it yet).
    The study's commit must fail (the set's metadata is WATCHed) and its retry refuse it."""
    dataset_id = stored_set(redis_client)
    deleted = []
    real_transaction = worker.studies.store.watched_transaction

    def delete_after_the_check(redis, keys, plan):
        def plan_then_delete(pipe):
            queue = plan(pipe)
            if not deleted:
                deleted.append(delete_unless_in_use(DatasetStore(redis_client), dataset_id))
            return queue

        return real_transaction(redis, keys, plan_then_delete)

    monkeypatch.setattr(worker.studies.store, "watched_transaction", delete_after_the_check)

    with pytest.raises(DatasetGoneError, match=dataset_id):
        StudyStore(redis_client).create("acme", study_on(dataset_id))

    assert deleted == [True]
    assert redis_client.smembers(RUNNING_KEY) == set()
    assert StudyStore(redis_client).list("acme") == ([], None)

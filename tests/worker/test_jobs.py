"""JobStore: records, guarded transitions, events, pagination and cancel, on a real Redis."""

from __future__ import annotations

import pytest

from worker.jobs import JobFinishedError, JobNotFoundError, JobStore

pytestmark = pytest.mark.integration

SPEC = {"name": "t", "dataset": {"name": "blobs"}, "shards": 2}


@pytest.fixture
def store(redis_client):
    return JobStore(redis_client)


def test_a_new_job_is_queued_and_announced(store):
    record = store.create(SPEC, "acme")

    assert record["id"].startswith("job_") and record["status"] == "queued"
    assert store.get(record["id"]) == record
    events = store.events(record["id"])
    assert [e["type"] for _, e in events] == ["created"]
    assert record["id"] in store.active_ids()


def test_a_terminal_status_is_never_overwritten_and_is_the_last_event(store):
    job = store.create(SPEC, "acme")["id"]
    store.transition(job, "running")
    store.transition(job, "succeeded", changes={"model_id": "mdl_1"})

    assert store.transition(job, "failed", "late error") is None
    assert store.update(job, {"step": 99}) is None

    record = store.get(job)
    assert record["status"] == "succeeded" and record["step"] == 0 and record["finished_at"]
    assert store.events(job)[-1][1]["status"] == "succeeded"
    assert job not in store.active_ids()


def test_events_resume_after_the_last_seen_id(store):
    job = store.create(SPEC, "acme")["id"]
    first = store.events(job)
    store.update(job, {"step": 3, "progress": 0.5})

    later = store.events(job, last_id=first[-1][0])

    assert [(e["type"], e["step"]) for _, e in later] == [("progress", 3)]
    assert store.events(job, last_id=later[-1][0], block_ms=50) == []


def test_list_is_newest_first_with_cursor_pages_and_status_filter(store):
    ids = [store.create(SPEC, "acme")["id"] for _ in range(5)]
    store.create(SPEC, "other")
    store.transition(ids[1], "cancelled")

    page1, cursor = store.list("acme", limit=2)
    page2, cursor2 = store.list("acme", limit=2, cursor=cursor)
    page3, cursor3 = store.list("acme", limit=2, cursor=cursor2)

    assert [r["id"] for r in page1 + page2 + page3] == ids[::-1]
    assert cursor3 is None
    assert [r["id"] for r in store.list("acme", status="cancelled")[0]] == [ids[1]]


def test_cancel_a_queued_job_finishes_it_and_a_running_one_asks_the_shards(store):
    queued = store.create(SPEC, "acme")["id"]
    running = store.create(SPEC, "acme")["id"]
    store.transition(running, "running")

    assert store.request_cancel(queued)["status"] == "cancelled"
    assert store.request_cancel(running)["status"] == "cancelling"
    assert store.cancel_requested(running)
    assert store.request_cancel(running)["status"] == "cancelling"  # idempotent


def test_cancel_of_a_finished_or_unknown_job_raises(store):
    job = store.create(SPEC, "acme")["id"]
    store.transition(job, "failed", "boom")

    with pytest.raises(JobFinishedError, match="failed"):
        store.request_cancel(job)
    with pytest.raises(JobNotFoundError):
        store.request_cancel("job_missing")


def test_a_stale_attempt_cannot_write(store):
    job = store.create(SPEC, "acme")["id"]
    store.update(job, {"attempt": 2})

    assert store.update(job, {"step": 5}, expect_attempt=1) is None
    assert store.update(job, {"step": 5}, expect_attempt=2)["step"] == 5


def test_every_change_stamps_updated_at_and_a_finished_job_keeps_its_last(store):
    job = store.create(SPEC, "acme")
    running = store.transition(job["id"], "running")
    finished = store.transition(job["id"], "succeeded")

    assert job["updated_at"] == job["created_at"]
    assert job["updated_at"] <= running["updated_at"] <= finished["updated_at"]
    assert store.get(job["id"])["updated_at"] == finished["finished_at"]


def test_a_cancelled_job_leaves_the_gang_pending_set(store, redis_client):
    from worker.gang import mark_pending
    from worker.jobs import GANG_PENDING_KEY

    job = store.create(SPEC, "acme")["id"]
    mark_pending(store, job, 1.0)

    store.request_cancel(job)

    assert redis_client.zscore(GANG_PENDING_KEY, job) is None


def _three_checkpoints(store, redis_client):
    from worker.fence import AttemptFence
    from worker.storage import artifact_store
    from worker.storage.checkpoints import save_checkpoint

    job = store.create(SPEC, "acme")["id"]
    store.transition(job, "running")
    artifacts = artifact_store(redis_client)
    fence = AttemptFence(store, job, 0)
    saved = [
        save_checkpoint(artifacts, job, {}, {}, {"global_step": s}, fence=fence, keep=5)
        for s in (1, 2, 3)
    ]
    return job, artifacts, saved


def _end(store, job: str, ending: str) -> None:
    if ending == "cancelled while queued":  # e.g. waiting for workers after a restart
        store.transition(job, "queued")
        store.request_cancel(job)
    else:
        store.transition(job, ending)


@pytest.mark.parametrize(
    "ending, kept",
    [("succeeded", 0), ("failed", 1), ("cancelled", 1), ("cancelled while queued", 1)],
)
def test_an_ended_job_keeps_its_newest_checkpoint_only_if_it_can_be_resumed(
    store, redis_client, ending, kept
):
    from worker.storage.checkpoints import checkpoint_keys, load_checkpoint
    from worker.storage.collector import collect

    job, artifacts, saved = _three_checkpoints(store, redis_client)

    _end(store, job, ending)

    newest = [saved[-1]["key"]] if kept else []
    assert checkpoint_keys(artifacts, job) == newest
    keys = sorted(s["key"] for s in saved)
    records = sorted(r["key"] for r in artifacts.records() if r["key"] in keys)
    assert records == (newest if kept else keys)  # a succeeded job's records are orphans now
    if kept:
        assert load_checkpoint(artifacts, job)[2]["global_step"] == 3
        assert {s.key for s in artifacts.backend.list(f"checkpoints/{job}/")} == set(newest)
    else:  # shard 0 removes them at once; failing that, the collector takes the orphans
        orphaned = collect(artifacts, grace_seconds=60, now=saved[-1]["created"] + 61).orphaned
        assert sorted(orphaned) == keys


def test_deleting_a_model_clears_its_id_from_the_finished_job(store, redis_client):
    import nnlib
    from worker.models_store import ModelStore

    job = store.create(SPEC, "acme")["id"]
    model = nnlib.build_model({"layers": [{"type": "dense", "units": 2}]}, (3,))
    saved = ModelStore(redis_client).save(model, tenant="acme", job_id=job)
    store.transition(job, "running")
    store.transition(job, "succeeded", changes={"model_id": saved["id"]})

    assert ModelStore(redis_client).delete(saved["id"])

    record = store.get(job)
    assert record["model_id"] is None and record["status"] == "succeeded"


def test_list_by_name_is_case_insensitive_and_pages_on(store):
    for name in ("Alpha-1", "beta", "ALPHA-2", "gamma"):
        store.create(SPEC | {"name": name}, "acme")

    first, cursor = store.list("acme", name="alpha", limit=1)
    second, end = store.list("acme", name="alpha", limit=1, cursor=cursor)

    assert [r["name"] for r in first + second] == ["ALPHA-2", "Alpha-1"]
    assert end is None


def test_a_filtered_page_stops_after_its_scan_budget_and_hands_back_a_cursor(store, monkeypatch):
    import worker.job_listing

    monkeypatch.setattr(worker.job_listing, "FILTER_SCAN", 10)
    store.create(SPEC | {"name": "needle"}, "acme")  # the oldest job
    for i in range(25):
        store.create(SPEC | {"name": f"hay-{i}"}, "acme")

    pages, cursor = [], None
    while True:
        found, cursor = store.list("acme", name="needle", limit=5, cursor=cursor)
        pages.append([r["name"] for r in found])
        if cursor is None:
            break

    assert pages[0] == [] and pages[-1] == ["needle"]
    assert len(pages) == 3

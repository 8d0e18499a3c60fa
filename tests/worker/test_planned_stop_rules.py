"""The planned stop's rules, one shard at a time against a real Redis: where S lands, who adopts
whose S, and when a shard falls back to the immediate (unsaved) hand-back."""

from __future__ import annotations

import pytest

from tests.worker.jobs_helpers import digits_spec
from worker import planned_stop
from worker.fence import AttemptFence, StaleAttemptError
from worker.jobs import JobStore
from worker.planned_stop import PlannedStop, stop_key
from worker.recovery import restart_job
from worker.stopping import WorkerStoppingError


@pytest.fixture
def store(redis_client):
    return JobStore(redis_client)


@pytest.fixture
def job(store):
    job_id = store.create(digits_spec(shards=2), "acme")["id"]
    store.transition(job_id, "running", expect_attempt=0)
    return job_id


def training(store, job, shard: int, step: int, step_seconds: float = 0.01) -> PlannedStop:
    stop = PlannedStop(AttemptFence(store, job, 0), shard)
    stop.supported = True
    stop.step_top(step)
    stop.step_seconds = step_seconds
    stop.step_started()
    return stop


def test_the_first_stopping_shard_sets_s_ahead_and_its_peer_stops_there(store, job):
    stopping = training(store, job, shard=1, step=100, step_seconds=0.01)
    stopping.worker_stopping()  # no raise: it goes on to S
    # mid-step 100: S counts from 101, and 0.3 s of 10 ms steps is 30 steps
    assert stopping.at == 131 and store.redis.get(stop_key(job, 0)) == b"131 1"

    peer = training(store, job, shard=0, step=101)
    peer.learn(store.redis.get(stop_key(job, 0)))
    assert not peer.due()
    peer.step_top(131)
    assert peer.due() and peer.reason() == "shard 1's worker was stopped (SIGTERM)"


def test_a_second_stopping_shard_adopts_the_s_already_set(store, job):
    training(store, job, shard=1, step=100).worker_stopping()
    second = training(store, job, shard=0, step=120, step_seconds=0.001)
    second.worker_stopping()
    assert second.at == 131 and second.by == 1


def test_fast_steps_still_stop_at_least_two_steps_ahead(store, job):
    stop = PlannedStop(AttemptFence(store, job, 0), 0)
    stop.supported = True
    stop.step_top(7)  # at a step's top, nothing of it computed: S counts from this step
    stop.worker_stopping()
    assert stop.at == 9


@pytest.mark.parametrize(
    "situation",
    ["steps slower than the grace allows", "local SGD", "not training yet"],
)
def test_a_stop_that_cannot_be_saved_in_time_hands_back_at_once(store, job, situation):
    stop = training(store, job, shard=0, step=50, step_seconds=planned_stop.GRACE_SECONDS)
    if situation == "local SGD":
        stop.step_seconds, stop.supported = 0.01, False
    if situation == "not training yet":
        stop = PlannedStop(AttemptFence(store, job, 0), 0)
        stop.supported = True
    with pytest.raises(WorkerStoppingError):
        stop.worker_stopping()
    assert store.redis.get(stop_key(job, 0)) is None  # the peers stop at the abort instead


def test_past_the_grace_the_stopping_shard_hands_back_unsaved(store, job):
    stop = training(store, job, shard=1, step=100)
    stop.worker_stopping()
    stop.deadline -= planned_stop.GRACE_SECONDS + 1  # its S did not come (a peer stalled)
    with pytest.raises(WorkerStoppingError):
        stop.worker_stopping()


def test_a_shard_that_learns_s_inside_step_s_cannot_save_it(store, job):
    store.redis.set(stop_key(job, 0), "40 1")
    late = training(store, job, shard=0, step=40)  # its exchange of step 40 is under way
    with pytest.raises(WorkerStoppingError):
        late.learn(store.redis.get(stop_key(job, 0)))
    on_time = PlannedStop(AttemptFence(store, job, 0), 0)
    on_time.supported = True
    on_time.step_top(40)
    on_time.learn(store.redis.get(stop_key(job, 0)))
    assert on_time.due()


def test_s_is_written_through_the_attempt_fence(store, job):
    stale = training(store, job, shard=1, step=100)
    assert restart_job(store, job, 0, "shard 0 died", enqueue=lambda job_id: None)
    with pytest.raises(StaleAttemptError):
        stale.worker_stopping()
    assert store.redis.get(stop_key(job, 0)) is None


def test_the_peers_of_shard_0_wait_for_its_requeue(store, job, monkeypatch):
    monkeypatch.setattr(planned_stop, "GRACE_SECONDS", 0.3)
    peer = training(store, job, shard=1, step=10)
    assert not peer.wait_for_requeue()  # shard 0 never requeued: the caller requeues itself
    restart_job(store, job, 0, "stopped", enqueue=lambda job_id: None, counted=False)
    assert peer.wait_for_requeue()

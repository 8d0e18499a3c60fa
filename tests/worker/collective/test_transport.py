"""GRADQ_ALLREDUCE_TRANSPORT: one decision for all shards, and shm trains exactly like Redis."""

from __future__ import annotations

import itertools
import threading

import pydantic
import pytest
import redis

from tests.harness import run_in_threads, wait_until
from tests.worker.jobs_helpers import (
    FAST,
    assert_identical_weights,
    assert_same_weights,
    digits_spec,
    model_weights,
    wait_finished,
)
from worker.collective.allreduce import data_client
from worker.collective.shm_transport import SHM_DIR
from worker.collective.transport import TransportError, _compression_note, choose_transport
from worker.config import Settings
from worker.jobs import JobStore
from worker.runner import run_shard_task
from worker.submit import submit_job

pytestmark = pytest.mark.integration


def record(host="h1", shm=True, setting="auto", tcp="198.18.0.1", shm_signal=True) -> dict:
    return {"host": host, "shm": shm, "setting": setting, "tcp": tcp, "shm_signal": shm_signal}


def test_auto_picks_shared_memory_on_one_host_else_tcp_else_redis():
    assert choose_transport([record(), record()]) == "shm"
    assert choose_transport([record(), record(host="h2")]) == "tcp"
    assert choose_transport([record(), record(shm=False)]) == "tcp"
    assert choose_transport([record(), record(host="h2", tcp=None)]) == "redis"
    assert choose_transport([record(), None]) == "redis"  # a shard that stored no record


def test_auto_picks_hierarchical_when_a_host_of_a_multi_host_job_runs_several_shards():
    two_by_two = [record(), record(host="h2"), record(), record(host="h2")]
    assert choose_transport(two_by_two) == "hierarchical"
    assert choose_transport([record(), record(host="h2"), record(host="h3")]) == "tcp"
    assert choose_transport([*two_by_two[:3], record(host="h2", shm=False)]) == "tcp"
    assert choose_transport([*two_by_two[:3], record(host="h2", shm_signal=False)]) == "tcp"
    assert choose_transport([*two_by_two[:3], None]) == "redis"  # no address for shard 3


def test_forcing_hierarchical_needs_shared_memory_and_an_address_on_every_shard():
    forced = record(setting="hierarchical")
    assert choose_transport([forced, record(host="h2")]) == "hierarchical"
    assert choose_transport([forced, record()]) == "hierarchical"  # one host: its leader adds
    with pytest.raises(TransportError, match=r"hierarchical needs .* shard\(s\) \[1\] lack"):
        choose_transport([forced, record(host="h2", shm=False)])


def test_a_forced_transport_wins_and_impossible_or_conflicting_ones_are_errors():
    assert choose_transport([record(setting="redis"), record()]) == "redis"
    assert choose_transport([record(setting="shm"), record()]) == "shm"
    assert choose_transport([record(setting="tcp"), record()]) == "tcp"
    with pytest.raises(TransportError, match=r"tcp needs an address .* shard\(s\) \[1\]"):
        choose_transport([record(setting="tcp"), record(tcp=None)])
    with pytest.raises(TransportError, match=r"different hosts \(shard 0: h1; shard 1: h2\)"):
        choose_transport([record(setting="shm"), record(host="h2")])
    with pytest.raises(TransportError, match=r"not writable for shard\(s\) \[1\]"):
        choose_transport([record(setting="shm"), record(shm=False)])
    with pytest.raises(TransportError, match=r"'redis' on shard\(s\) \[1\], 'shm' on shard\(s\)"):
        choose_transport([record(setting="shm"), record(setting="redis")])


def test_the_setting_reads_the_environment_and_refuses_unknown_values(monkeypatch):
    monkeypatch.setenv("GRADQ_ALLREDUCE_TRANSPORT", "redis")
    assert Settings().allreduce_transport == "redis"
    assert Settings(allreduce_transport="shm").allreduce_transport == "shm"
    assert Settings.model_fields["allreduce_transport"].default == "auto"

    monkeypatch.setenv("GRADQ_ALLREDUCE_TRANSPORT", "udp")
    with pytest.raises(pydantic.ValidationError, match=r"allreduce_transport[\s\S]*'udp'"):
        Settings()


def test_forcing_shm_on_shards_of_different_hosts_fails_the_job_without_waiting(
    redis_url, redis_client, monkeypatch
):
    hosts, lock = itertools.count(), threading.Lock()

    def next_host() -> str:  # each shard (thread) claims from "another machine"
        with lock:
            return f"machine{next(hosts)}"

    monkeypatch.setattr("worker.collective.transport.host_identity", next_host)
    settings = Settings(
        redis_url=redis_url,
        allreduce_transport="shm",
        peer_timeout_seconds=30,
        heartbeat_seconds=0.3,
    )
    job = JobStore(redis_client).create(digits_spec(shards=2), "acme")["id"]

    def shard(i: int) -> str:
        store = JobStore(redis.Redis.from_url(redis_url))
        return run_shard_task(
            store, data_client(redis_url), settings, job, i, 0, lambda: None, lambda _: None
        )

    outcomes = run_in_threads(shard, 2, timeout=25)  # well inside the 30 s peer timeout

    record = JobStore(redis_client).get(job)
    assert outcomes == ["failed", "failed"] and record["status"] == "failed"
    assert "GRADQ_ALLREDUCE_TRANSPORT=shm needs every shard on one host" in record["status_reason"]
    assert "machine0" in record["status_reason"] and "machine1" in record["status_reason"]


def job_segments(job_id: str) -> list:
    return list(SHM_DIR.glob(f"gradq-{job_id}-*"))


def test_shm_tcp_and_redis_transports_train_bit_identical_weights(redis_client, start_worker):
    trained = {}
    for transport in ("shm", "tcp", "redis"):
        worker = start_worker(concurrency=2, GRADQ_ALLREDUCE_TRANSPORT=transport, **FAST)
        job = submit_job(redis_client, digits_spec(shards=2, epochs=2), "acme")
        trained[transport] = wait_finished(redis_client, job["id"])
        assert trained[transport]["status"] == "succeeded", trained[transport]["status_reason"]
        worker.stop()
    start_worker(concurrency=1, **FAST)
    single = wait_finished(
        redis_client, submit_job(redis_client, digits_spec(1, epochs=2), "a")["id"]
    )

    shm = trained["shm"]
    for transport, done in trained.items():
        assert [h["transport"] for h in done["history"]] == [transport, transport]
        assert all(h["comm_seconds"] > 0 for h in done["history"])
    for other in ("tcp", "redis"):
        assert_identical_weights(redis_client, shm, trained[other])
        val_losses = [h["val_loss"] for h in trained[other]["history"]]
        assert [h["val_loss"] for h in shm["history"]] == val_losses
    a = model_weights(redis_client, shm["model_id"])
    assert_same_weights(a, model_weights(redis_client, single["model_id"]), rtol=1e-4)
    # one shard exchanges nothing, so the dashboard's communication chart stays at zero
    assert [(h["transport"], h["comm_seconds"]) for h in single["history"]] == [("none", 0.0)] * 2
    wait_until(lambda: not job_segments(shm["id"]), 10, "the shm job's segments to be unlinked")


@pytest.mark.parametrize(
    "compression, transport, note",
    [
        (None, "tcp", ""),
        ("zstd", "tcp", ", zstd compression on the network"),
        ("bf16", "hierarchical", ", bf16 compression on the network"),
        ("zstd", "shm", " (zstd compression does not apply: no network hop)"),
        ("fp16", "redis", " (fp16 compression does not apply: no network hop)"),
    ],
)
def test_the_transport_log_line_says_whether_the_specs_compression_applies(
    compression, transport, note
):
    assert _compression_note(compression, transport) == note

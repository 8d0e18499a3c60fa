"""A step deadline that passes while a peer is dying is reported as the peer's death."""

from __future__ import annotations

from worker.config import Settings
from worker.recovery import PeerLostError, attempt_key, explain_timeout

SETTINGS = Settings(heartbeat_seconds=0.05, peer_timeout_seconds=0.4)  # leases live 0.2 s


def test_a_peer_whose_lease_expires_after_our_deadline_is_named_dead(redis_client):
    redis_client.set(attempt_key("job_a", 0, "lease:1"), 1.0, px=100)  # its last renewal
    redis_client.hset(attempt_key("job_a", 0, "seen"), "1", 1.0)

    found = explain_timeout(redis_client, "job_a", 0, [1], SETTINGS)

    assert isinstance(found, PeerLostError) and found.shard == 1
    assert "shard 1 died" in str(found)


def test_a_peer_that_keeps_renewing_its_lease_stays_a_timeout(redis_client):
    redis_client.set(attempt_key("job_a", 0, "lease:1"), 1.0, px=10_000)  # alive, just slow

    assert explain_timeout(redis_client, "job_a", 0, [1], SETTINGS) is None

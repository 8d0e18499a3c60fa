"""Cross-process cache invalidation: a deleted model leaves every API process's cache.

Each API process runs one thread subscribed to a Redis channel; the process that deletes a model
publishes its id. The deleting process also evicts directly, so it never depends on the message.
"""

from __future__ import annotations

import logging
import threading

import redis

from api.model_cache import ModelCache

CHANNEL = "gradq:models:deleted"
log = logging.getLogger(__name__)


def publish_deleted(redis_client: redis.Redis, model_id: str) -> None:
    redis_client.publish(CHANNEL, model_id)


class InvalidationListener:
    """Evicts published model ids from ``cache`` until ``stop()``."""

    def __init__(self, redis_client: redis.Redis, cache: ModelCache):
        self._redis = redis_client
        self._cache = cache
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gradq-invalidation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message and message.get("type") == "message":
                        data = message["data"]
                        self._cache.evict(data.decode() if isinstance(data, bytes) else data)
                pubsub.close()
            except redis.RedisError as error:
                # Redis down: drop everything cached (a delete may be missed) and retry.
                log.warning("model cache invalidation lost its Redis connection: %s", error)
                self._cache.clear()
                self._stop.wait(1.0)

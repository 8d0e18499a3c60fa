"""The FastAPI app: ``create_app(settings)`` for tests, ``app`` for ``uvicorn api.app:app``."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI

from api.errors import install_error_handlers
from api.fast_predict import FastPredict
from api.invalidation import InvalidationListener
from api.json_response import StrictJSONResponse
from api.keys import KeyRing
from api.limits import BodySizeLimit
from api.metrics import ApiMetrics, MetricsMiddleware
from api.model_cache import ModelCache
from api.routers import (
    datasets,
    export,
    health,
    job_lifecycle,
    jobs,
    models,
    oip,
    predict,
    registry,
    studies,
)
from api.shutdown import ShutdownFlag
from api.ui import install as install_dashboard
from worker.celery_app import CONTROL_QUEUE, TRAINING_QUEUE, configure
from worker.celery_app import app as celery_app
from worker.config import Settings, get_settings
from worker.jobs import JobStore
from worker.redis_client import connect
from worker.storage import artifact_store

log = logging.getLogger("gradq.api")
# Celery's Redis transport keeps one list per queue and priority step.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
API_OUTAGE_SECONDS = 2.0

DESCRIPTION = """Distributed NumPy training as a service.

Authenticate with `Authorization: Bearer <API key>` (keys come from `gradq keys create TENANT`);
here, paste the key under Authorize to try the calls.
Every resource belongs to the key's tenant; other tenants' ids answer 404.
Errors are `{"detail": ...}` naming the field or the resource."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A configured API: stores on ``settings.redis_url``, keys, limits, metrics."""
    settings = settings or get_settings()
    _point_celery_at(settings)
    # rides out a blip of a second or two; a longer outage is a 503 rather than a hung request
    redis_client = connect(settings.redis_url, outage_seconds=API_OUTAGE_SECONDS, socket_timeout=30)
    shutdown = ShutdownFlag()
    cache_ = ModelCache(settings.model_cache_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if not app.state.keyring.configured:
            log.warning("gradq API: no API keys configured; serving WITHOUT authentication")
        listener = InvalidationListener(app.state.redis, app.state.model_cache)
        listener.start()
        shutdown.install()
        try:
            yield
        finally:
            shutdown.uninstall()
            listener.stop()

    # /docs is served by the dashboard from vendored Swagger UI assets (no CDN); ReDoc only
    # exists as a CDN page, so it is off.
    app = FastAPI(
        title="gradq",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=StrictJSONResponse,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.redis = redis_client
    app.state.artifacts = artifact_store(redis_client, settings)
    app.state.shutdown = shutdown
    app.state.keyring = KeyRing(settings.api_keys_file, settings.api_keys)
    app.state.model_cache = cache_
    app.state.metrics = ApiMetrics()
    app.state.metrics.watch_redis(lambda: redis_snapshot(redis_client))
    install_error_handlers(app)
    routers = (
        jobs,
        job_lifecycle,
        models,
        predict,
        export,
        registry,
        datasets,
        studies,
        health,
        oip,
    )
    for router in (module.router for module in routers):
        app.include_router(router)
    install_dashboard(app)

    def limit_for(path: str) -> int:
        if path.startswith("/v1/datasets"):
            return settings.max_dataset_bytes + 1024 * 1024  # room for the multipart envelope
        if path == "/v1/models":
            return settings.max_model_bytes + 1024 * 1024
        return settings.max_request_bytes

    app.add_middleware(FastPredict, state=app.state)
    app.add_middleware(BodySizeLimit, limit_for=limit_for)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


def _point_celery_at(settings: Settings) -> None:
    """``submit_job`` enqueues through the process's Celery app: same Redis as this API."""
    if celery_app.conf.broker_url != settings.redis_url:
        configure(celery_app, settings)


def redis_snapshot(redis_client: redis.Redis) -> tuple[dict[str, int], dict[str, int]]:
    """(jobs by status, tasks waiting per queue) for ``/metrics``."""
    store = JobStore(redis_client)
    by_status: dict[str, int] = {}
    for job_id in store.active_ids():  # non-terminal jobs; finished ones are history
        record = store.get(job_id)
        if record is not None:
            by_status[record["status"]] = by_status.get(record["status"], 0) + 1
    depths = {}
    for queue in (TRAINING_QUEUE, CONTROL_QUEUE):
        depths[queue] = sum(int(redis_client.llen(queue + s)) for s in PRIORITY_SUFFIXES)
    return by_status, depths


def __getattr__(name: str):
    # ``uvicorn api.app:app`` builds the app on first access, so importing this module is cheap.
    if name == "app":
        globals()["app"] = value = create_app()
        return value
    raise AttributeError(name)

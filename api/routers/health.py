"""``/healthz`` (the process answers), ``/readyz`` (Redis and a live training worker), ``/metrics``.

Readiness reads the workers' heartbeats (``worker.worker_registry``) instead of pinging them
through the broker: a ping with a short timeout flipped to 503 under load, when busy workers
answered late, and said ready when only control workers were up.
"""

from __future__ import annotations

import redis
from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.deps import RedisDep, SettingsDep
from api.json_body import StrictJSONRoute
from api.schemas.common import errors
from worker.celery_app import TRAINING_QUEUE
from worker.worker_registry import live_workers

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    workers: list[str]


@router.get("/healthz", response_model=Health, summary="The API process is up")
async def healthz():
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    responses=errors(503),
    summary="Redis is reachable and at least one training worker is alive",
)
def readyz(redis_client: RedisDep, settings: SettingsDep):
    """Ready = Redis answers and a worker consuming the training queue heartbeated recently."""
    try:
        workers = live_workers(redis_client, settings, TRAINING_QUEUE)
    except redis.RedisError as error:
        raise HTTPException(503, detail=f"redis: unreachable ({error})") from None
    if not workers:
        raise HTTPException(
            503, detail=f"workers: no live worker consumes the {TRAINING_QUEUE} queue"
        )
    return {"status": "ready", "workers": sorted(w.name for w in workers)}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
    summary="Prometheus metrics",
)
def metrics(request: Request):
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )

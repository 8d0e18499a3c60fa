"""``/healthz`` (the process answers), ``/readyz`` (Redis and a live worker), ``/metrics``."""

from __future__ import annotations

import redis
from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.deps import RedisDep
from api.json_body import StrictJSONRoute
from api.schemas.common import errors

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)
PING_TIMEOUT_SECONDS = 0.5


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
    summary="Redis is reachable and at least one Celery worker answers",
)
def readyz(request: Request, redis_client: RedisDep):
    try:
        redis_client.ping()
    except redis.RedisError as error:
        raise HTTPException(503, detail=f"redis: unreachable ({error})") from None
    replies = request.app.state.celery().control.ping(timeout=PING_TIMEOUT_SECONDS)
    workers = sorted(name for reply in replies or [] for name in reply)
    if not workers:
        raise HTTPException(503, detail="workers: no Celery worker answered a ping")
    return {"status": "ready", "workers": workers}


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

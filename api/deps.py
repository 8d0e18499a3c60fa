"""FastAPI dependencies: settings, Redis, the stores, the caller's tenant, the model cache.

Everything a route needs comes through here (``Annotated[..., Depends(...)]``), so tests can swap
any of it with ``app.dependency_overrides``. The dependencies are ``async def`` on purpose: sync
dependencies each cost a thread-pool hop, which the prediction fast path cannot afford.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import redis
from fastapi import Depends, Request

from api.auth import BearerCredentials, tenant_for_credentials
from api.keys import KeyRing
from api.model_cache import ModelCache
from api.sessions import session_tenant
from worker.config import Settings
from worker.datasets.store import DatasetStore
from worker.jobs import JobStore
from worker.models_store import ModelStore
from worker.storage import ArtifactStore
from worker.storage.datasets import ArtifactBlobs
from worker.submit import submit_job


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_redis(request: Request) -> redis.Redis:
    return request.app.state.redis


async def get_keyring(request: Request) -> KeyRing:
    return request.app.state.keyring


async def get_model_cache(request: Request) -> ModelCache:
    return request.app.state.model_cache


async def get_tenant(request: Request, credentials: BearerCredentials) -> str:
    # A browser session (dashboard cookie) counts like its key; an Authorization header always
    # wins, even a malformed one (then credentials is None: a 401, not the session's tenant).
    if "authorization" not in request.headers:
        tenant = session_tenant(request)
        if tenant is not None:
            return tenant
    return tenant_for_credentials(credentials, request.app.state.keyring)


async def get_job_store(redis_client: Annotated[redis.Redis, Depends(get_redis)]) -> JobStore:
    return JobStore(redis_client)


async def get_artifacts(request: Request) -> ArtifactStore:
    return request.app.state.artifacts


async def get_model_store(
    redis_client: Annotated[redis.Redis, Depends(get_redis)],
    artifacts: Annotated[ArtifactStore, Depends(get_artifacts)],
) -> ModelStore:
    return ModelStore(redis_client, artifacts)


async def get_dataset_store(
    redis_client: Annotated[redis.Redis, Depends(get_redis)],
    artifacts: Annotated[ArtifactStore, Depends(get_artifacts)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> DatasetStore:
    return DatasetStore(
        redis_client, ArtifactBlobs(artifacts), quota_bytes=settings.max_storage_bytes_per_tenant
    )


Submitter = Callable[[dict, str, int | None], dict]


async def get_submitter(redis_client: Annotated[redis.Redis, Depends(get_redis)]) -> Submitter:
    """``submit(spec, tenant, max_active) -> record``: creates the job record and enqueues
    ``start_job``; ActiveJobLimitError when the tenant has ``max_active`` unfinished jobs."""
    return lambda spec, tenant, max_active=None: submit_job(redis_client, spec, tenant, max_active)


Starter = Callable[[str], object]


async def get_starter() -> Starter:
    """``start(job_id)``: enqueues ``start_job`` for a job whose record is already queued."""
    from worker.tasks import start_job

    return start_job.delay


SettingsDep = Annotated[Settings, Depends(get_settings)]
ArtifactsDep = Annotated[ArtifactStore, Depends(get_artifacts)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
TenantDep = Annotated[str, Depends(get_tenant)]
ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]
JobStoreDep = Annotated[JobStore, Depends(get_job_store)]
ModelStoreDep = Annotated[ModelStore, Depends(get_model_store)]
DatasetStoreDep = Annotated[DatasetStore, Depends(get_dataset_store)]
SubmitDep = Annotated[Submitter, Depends(get_submitter)]
StartDep = Annotated[Starter, Depends(get_starter)]

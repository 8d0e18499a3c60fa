"""The one settings object of gradq, read from ``GRADQ_*`` environment variables.

Every field is documented in README.md's configuration table; a test checks that the table and this
class agree, so a new setting without documentation fails CI.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """The per-user cache folder for downloaded data sets (XDG convention)."""
    cache_root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_root) / "gradq" / "datasets"


def default_artifact_url() -> str:
    """``file://`` under the per-user data folder (XDG); ``gradq up`` uses its state folder."""
    data_root = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(data_root) / "gradq" / "artifacts").as_uri()


class Settings(BaseSettings):
    """Configuration shared by the API, the workers and the CLI."""

    model_config = SettingsConfigDict(env_prefix="GRADQ_", extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for broker, jobs, models")
    api_url: str = Field("http://127.0.0.1:8000", description="Where CLI clients reach the API")
    api_key: str | None = Field(None, description="Bearer key the CLI client sends")
    cli_reconnect_seconds: float = Field(
        120.0, gt=0, description="How long a following CLI command waits for an API that went away"
    )
    cli_progress_seconds: float = Field(
        30.0, gt=0, description="Off a terminal, a progress line within an epoch at most this often"
    )
    data_dir: Path = Field(default_factory=default_data_dir, description="Data set cache folder")

    api_keys_file: Path | None = Field(None, description="File of hashed API keys (tenant per key)")
    api_keys: str | None = Field(None, description="Comma-separated tenant:key pairs")
    max_dataset_bytes: int = Field(
        512 * 1024 * 1024, description="Upload size limit (file, and its arrays once expanded)"
    )
    max_dataset_columns: int = Field(100_000, description="Columns of an uploaded CSV")
    max_storage_bytes_per_tenant: int = Field(
        2 * 1024 * 1024 * 1024, description="Stored data set bytes per tenant (quota)"
    )
    max_request_bytes: int = Field(16 * 1024 * 1024, description="JSON request body limit")
    max_predict_batch: int = Field(1024, description="Samples per prediction request")
    max_image_pixels: int = Field(
        16_777_216, description="Pixels (width x height) of a prediction image, from its header"
    )
    max_active_jobs_per_tenant: int = Field(16, description="Queued+running jobs per tenant")
    max_model_bytes: int = Field(256 * 1024 * 1024, description="Model import size limit")
    max_parameters: int = Field(20_000_000, description="Parameter budget of one model")
    model_cache_bytes: int = Field(256 * 1024 * 1024, description="API model LRU cache size")
    session_seconds: int = Field(12 * 3600, description="Dashboard login session lifetime")

    max_pending_seconds: float = Field(600.0, description="Gang wait before a job fails")
    peer_timeout_seconds: float = Field(30.0, description="Deadline for a dead shard's peers")
    heartbeat_seconds: float = Field(2.0, description="Shard lease renewal period")
    task_time_limit_seconds: int = Field(24 * 3600, description="Longest training task")
    worker_max_memory_mb: int = Field(4096, description="Recycle a worker child above this RSS")
    blas_threads: int | None = Field(None, description="BLAS threads per worker process")
    artifact_url: str = Field(
        default_factory=default_artifact_url,
        description="Where data sets, models and checkpoints live: file:///path or s3://bucket/prefix",
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint of a self-hosted store")
    checkpoints_kept: int = Field(2, ge=1, description="Newest checkpoints kept per running job")
    artifact_grace_seconds: float = Field(
        3600.0, description="Age before the collector removes an unreferenced artifact"
    )
    artifact_collect_seconds: float = Field(600.0, description="Period of the artifact collector")
    dataset_cache_bytes: int = Field(
        4 * 1024**3, description="Per-host cache of downloaded data sets (S3 backend)"
    )
    allreduce_transport: Literal["auto", "redis", "shm", "tcp", "hierarchical"] = Field(
        "auto",
        description="Gradient path between shards: shm on one host, hierarchical (shm inside a "
        "host, tcp between host leaders) or tcp across hosts",
    )
    allreduce_address: str | None = Field(
        None, description="Address this host's shards listen on for tcp (default: toward Redis)"
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return Settings()

"""``gradq migrate``: move model weights and data sets from Redis into the artifact store."""

from __future__ import annotations

import typer


def migrate() -> None:
    """Move what an earlier gradq stored in Redis to GRADQ_ARTIFACT_URL (safe to run twice)."""
    import redis

    from worker.config import get_settings
    from worker.storage import artifact_store
    from worker.storage.migrate import migrate_legacy

    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url)
    store = artifact_store(client, settings)
    done = migrate_legacy(client, store)
    typer.echo(
        f"moved {done.models} models and {done.dataset_arrays} data set arrays "
        f"({done.bytes_moved / 1e6:.1f} MB) to {store.backend.url}"
    )


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)

"""Placeholder FastAPI app (the API issue replaces it): liveness only."""

from fastapi import FastAPI

app = FastAPI(title="gradq")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}

"""The demo job of ``gradq up``: a small digits classifier on 2 shards, then a prediction."""

from __future__ import annotations

import time

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

DEMO_SPEC = {
    "name": "demo-digits-mlp",
    "dataset": {"name": "digits", "validation_split": 0.1},
    "model": {
        "layers": [
            {"type": "dense", "units": 64, "activation": "relu"},
            {"type": "dense", "units": 10},
        ]
    },
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.005},
    "batch_size": 64,
    "epochs": 15,
    "shards": 2,
    "seed": 0,
}
TERMINAL = {"succeeded", "failed", "cancelled"}


def run_demo(api_url: str, console: Console, headers: dict[str, str] | None = None) -> bool:
    """Submit the demo job, show live progress, predict one test digit; True when all worked."""
    with httpx.Client(base_url=api_url, headers=headers or {}, timeout=30) as http:
        response = http.post("/v1/jobs", json=DEMO_SPEC)
        if response.status_code != 202:
            console.print(f"[red]demo job refused ({response.status_code}): {response.text}")
            return False
        job = response.json()
        console.print(f"demo job [bold]{job['id']}[/]: digits MLP on 2 shards")
        job = _follow(http, job["id"], console)
        if job["status"] != "succeeded":
            console.print(f"[red]demo job {job['status']}: {job.get('status_reason')}")
            return False
        metrics = job.get("metrics") or {}
        console.print(
            f"test accuracy {metrics.get('test_accuracy', float('nan')):.3f}, "
            f"model [bold]{job['model_id']}[/]"
        )
        return _predict_one(http, job["model_id"], console)


def _follow(http: httpx.Client, job_id: str, console: Console) -> dict:
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("training", total=1.0, detail="queued")
        while True:
            job = http.get(f"/v1/jobs/{job_id}").json()
            detail = f"epoch {job.get('epoch', 0)} step {job.get('step', 0)}"
            if job.get("train_loss") is not None:
                detail += f" loss {job['train_loss']:.4f}"
            history = job.get("history") or []
            if history and history[-1].get("val_accuracy") is not None:
                detail += f" val_acc {history[-1]['val_accuracy']:.3f}"
            progress.update(bar, completed=job.get("progress") or 0.0, detail=detail)
            if job["status"] in TERMINAL:
                return job
            time.sleep(0.3)


def _predict_one(http: httpx.Client, model_id: str, console: Console) -> bool:
    # a test image of sklearn's digits set (an "8x8" image of a 3), as a user would send it
    from sklearn.datasets import load_digits

    digits = load_digits()
    sample, label = digits.data[-3], int(digits.target[-3])
    response = http.post(f"/v1/models/{model_id}/predict", json={"inputs": sample.tolist()})
    if response.status_code != 200:
        console.print(f"[red]prediction failed ({response.status_code}): {response.text}")
        return False
    predicted = response.json()["predictions"][0]
    console.print(f"prediction for a handwritten {label}: [bold]{predicted}[/]")
    return True

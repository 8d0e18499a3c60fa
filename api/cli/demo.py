"""The demo job of ``gradq up``: a small digits classifier on 2 shards, then a prediction."""

from __future__ import annotations

from rich.console import Console

from api.cli.progress import JobProgress
from api.client import ApiError, GradqClient

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


def run_demo(api_url: str, console: Console, api_key: str | None = None) -> bool:
    """Submit the demo job, show live progress, predict one test digit; True when all worked."""
    with GradqClient(api_url, api_key) as api:
        try:
            job = api.submit(DEMO_SPEC)
            console.print(f"demo job [bold]{job['id']}[/]: digits MLP on 2 shards")
            with JobProgress(console) as bar:  # fed by the job's SSE stream, not by polling
                for name, data in api.events(job["id"]):
                    bar.update(name, data)
            job = api.job(job["id"])
            if job["status"] != "succeeded":
                console.print(f"[red]demo job {job['status']}: {job.get('status_reason')}")
                return False
            metrics = job.get("metrics") or {}
            console.print(
                f"test accuracy {metrics.get('test_accuracy', float('nan')):.3f}, "
                f"model [bold]{job['model_id']}[/]"
            )
            # a test image of sklearn's digits set, sent as a user would send it
            from sklearn.datasets import load_digits

            digits = load_digits()
            sample, label = digits.data[-3], int(digits.target[-3])
            predicted = api.predict(job["model_id"], sample.tolist())["predictions"][0]
        except ApiError as error:
            console.print(f"[red]demo failed: {error}")
            return False
    console.print(f"prediction for a handwritten {label}: [bold]{predicted}[/]")
    return True

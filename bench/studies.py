"""Hyperparameter studies on the Fashion-MNIST MLP: random search vs TPE vs TPE + hyperband.

Starts its own redis-server, a real Celery worker (``--parallel`` processes, 1 BLAS thread each)
and the API, then runs the study of ``examples/studies/fashion_mnist_mlp.json`` (learning rate,
width, batch size; the same space and seed for every row) with three sampler/pruner pairs, one
after the other. Prints, per row: the best validation accuracy found, the epochs trained over all
trials, the study's wall time and the trial-slot use (seconds trial jobs ran / (wall time x
max_parallel)), then the target check: TPE with hyperband pruning reaches random search's best
within 0.002 using at most half its epochs.
Run: ``python bench/studies.py [--trials 24] [--epochs 9] [--parallel 2] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.client import GradqClient  # noqa: E402
from tests.api.live import LiveApi  # noqa: E402
from tests.harness import CeleryWorker, RedisServer, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key-0123456789"
ROWS = (("random", "none"), ("tpe", "none"), ("tpe", "hyperband"))
TOLERANCE = 0.002


def seconds(start: str, end: str) -> float:
    parse = lambda moment: datetime.fromisoformat(moment.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_study(api: GradqClient, study: dict) -> dict:
    """Run one study to its end; its figures for the table."""
    created = api.create_study(study)
    done = wait_until(
        lambda: (s := api.study(created["id"]))["status"] != "running" and s,
        24 * 3600,
        f"study {study['sampler']}/{study['pruner']}",
        interval=1.0,
    )
    if done["status"] != "succeeded":
        raise RuntimeError(f"study {done['id']} {done['status']}: {done['status_reason']}")
    wall = seconds(done["created_at"], done["finished_at"])
    busy = 0.0
    for trial in done["trials"]:
        job = api.job(trial["job_id"])
        if job.get("started_at") and job.get("finished_at"):
            busy += seconds(job["started_at"], job["finished_at"])
    return {
        "best": done["best_trial"]["value"],
        "best_params": done["best_trial"]["params"],
        "epochs": done["epochs_total"],
        "pruned": done["counts"]["pruned"],
        "wall": wall,
        "slots": busy / (wall * study["max_parallel"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    study = json.loads((ROOT / "examples" / "studies" / "fashion_mnist_mlp.json").read_text())
    study["base_spec"]["epochs"] = args.epochs
    study |= {"max_trials": args.trials, "max_parallel": args.parallel, "seed": args.seed}

    workdir = Path(tempfile.mkdtemp(prefix="gradq-bench-studies-"))
    redis = RedisServer(workdir / "redis")
    env = {"GRADQ_BLAS_THREADS": "1", "GRADQ_API_KEYS": f"bench:{KEY}"}
    worker = CeleryWorker(redis.url, concurrency=args.parallel, log_path=workdir / "w.log", **env)
    api = LiveApi(redis.url, workdir / "api.log", **env)
    results = {}
    try:
        with GradqClient(api.url, KEY, timeout=120) as client:
            for sampler, pruner in ROWS:
                row = study | {"name": f"bench-{sampler}-{pruner}"}
                results[(sampler, pruner)] = run_study(
                    client, row | {"sampler": sampler, "pruner": pruner}
                )
                print_row(sampler, pruner, results[(sampler, pruner)], flush=True)
    finally:
        api.stop()
        worker.stop()
        redis.stop()
    print_summary(args, results)


def print_row(sampler: str, pruner: str, r: dict, flush: bool = False) -> None:
    print(
        f"{sampler:>6} {pruner:>9}  best val acc {r['best']:.4f}  epochs {r['epochs']:4d}"
        f"  pruned {r['pruned']:2d}  wall {r['wall']:7.1f} s  slot use {r['slots']:.2f}"
        f"  best params {r['best_params']}",
        flush=flush,
    )


def print_summary(args, results: dict) -> None:
    random, tuned = results[("random", "none")], results[("tpe", "hyperband")]
    print(
        f"\nFashion-MNIST MLP study, {args.trials} trials of up to {args.epochs} epochs,"
        f" {args.parallel} in parallel, seed {args.seed}"
    )
    for (sampler, pruner), row in results.items():
        print_row(sampler, pruner, row)
    gap = random["best"] - tuned["best"]
    ratio = tuned["epochs"] / random["epochs"]
    reached = gap <= TOLERANCE and ratio <= 0.5
    print(
        f"TPE+hyperband vs random: best {tuned['best']:.4f} vs {random['best']:.4f}"
        f" (gap {gap:+.4f}, target <= {TOLERANCE}), epochs {ratio:.2f}x (target <= 0.5):"
        f" {'target met' if reached else 'target NOT met'}"
    )


if __name__ == "__main__":
    main()

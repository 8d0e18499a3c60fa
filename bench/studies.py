"""Hyperparameter studies on the Fashion-MNIST MLP: random search vs TPE vs TPE + hyperband.

Starts its own redis-server, a real Celery worker (``--parallel`` processes, 1 BLAS thread each)
and the API, then runs the study of ``examples/studies/fashion_mnist_mlp.json`` (learning rate,
width, batch size; the same space for every row) once per sampler/pruner pair and per study seed,
the pairs alternating within each seed so machine load falls on every arm alike. Prints, per
study: the best validation accuracy found, the epochs trained over all trials, the wall time and
the trial-slot use (seconds trial jobs ran / (wall time x max_parallel)) and the load average;
then per seed and on the means, TPE + hyperband against random search: the accuracy gap and the
epochs ratio, and the target (gap <= 0.002 with at most half the epochs).
Run: ``python bench/studies.py [--trials 24] [--epochs 9] [--parallel 2] [--seeds 0 1 2 3 4]
[--arms tpe/hyperband ...] [--log studies.jsonl]``; ``--summarize A.jsonl [B.jsonl ...]`` prints
the summary of (partial) logs together, e.g. a new TPE + hyperband run against the random-search
rows of an earlier one (random search does not depend on the pruner or TPE settings).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
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
# the target's two arms first: if a run is cut short, its seeds still pair them
ARMS = ("random/none", "tpe/hyperband", "tpe/none")
BASELINE, CANDIDATE = "random/none", "tpe/hyperband"
TOLERANCE = 0.002
EPOCHS_RATIO = 0.5


def seconds(start: str, end: str) -> float:
    parse = lambda moment: datetime.fromisoformat(moment.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_study(api: GradqClient, study: dict) -> dict:
    """Run one study to its end; its figures for the table."""
    load_before = os.getloadavg()[0]
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
        "arm": f"{study['sampler']}/{study['pruner']}",
        "seed": study["seed"],
        "best": done["best_trial"]["value"],
        "best_trial": done["best_trial"]["trial"],
        "best_params": done["best_trial"]["params"],
        "epochs": done["epochs_total"],
        "pruned": done["counts"]["pruned"],
        "wall": wall,
        "slots": busy / (wall * study["max_parallel"]),
        "load": (load_before + os.getloadavg()[0]) / 2,
        # every trial, so two runs of a seed can be compared draw by draw
        "trials": [
            {key: trial[key] for key in ("trial", "params", "state", "value", "epochs")}
            for trial in done["trials"]
        ],
    }


def run(args) -> list[dict]:
    study = json.loads((ROOT / "examples" / "studies" / "fashion_mnist_mlp.json").read_text())
    study["base_spec"]["epochs"] = args.epochs
    study |= {"max_trials": args.trials, "max_parallel": args.parallel}
    workdir = Path(tempfile.mkdtemp(prefix="gradq-bench-studies-"))
    redis = RedisServer(workdir / "redis")
    env = {"GRADQ_BLAS_THREADS": "1", "GRADQ_API_KEYS": f"bench:{KEY}"}
    worker = CeleryWorker(redis.url, concurrency=args.parallel, log_path=workdir / "w.log", **env)
    api = LiveApi(redis.url, workdir / "api.log", **env)
    results = []
    try:
        with GradqClient(api.url, KEY, timeout=120) as client:
            for seed in args.seeds:
                for arm in args.arms:
                    sampler, pruner = arm.split("/")
                    row = study | {"name": f"bench-{sampler}-{pruner}-s{seed}", "seed": seed}
                    result = run_study(client, row | {"sampler": sampler, "pruner": pruner})
                    results.append(result)
                    print_row(result, flush=True)
                    if args.log:
                        with open(args.log, "a") as log:
                            log.write(json.dumps(result) + "\n")
    finally:
        api.stop()
        worker.stop()
        redis.stop()
    return results


def print_row(r: dict, flush: bool = False) -> None:
    # rows copied from an earlier run's table (a reused baseline) may lack the detail fields
    detail = (
        f"  slot use {r['slots']:.2f}  load {r['load']:4.1f}"
        f"  best trial {r['best_trial']:2d} {r['best_params']}"
        if r.get("best_trial") is not None
        else "  (from an earlier run's table)"
    )
    print(
        f"seed {r['seed']}  {r['arm']:>13}  best val acc {r['best']:.4f}  epochs {r['epochs']:4d}"
        f"  pruned {r['pruned']:2d}  wall {r['wall']:7.1f} s{detail}",
        flush=flush,
    )


def print_summary(results: list[dict], title: str) -> None:
    print(f"\n{title}")
    for r in results:
        print_row(r)
    by = {(r["arm"], r["seed"]): r for r in results}
    arms = [arm for arm in ARMS if any(r["arm"] == arm for r in results)]
    print("\nmeans over seeds (sd of the best):")
    for arm in arms:
        rows = [r for r in results if r["arm"] == arm]
        bests = [r["best"] for r in rows]
        sd = statistics.stdev(bests) if len(bests) > 1 else 0.0
        print(
            f"  {arm:>13}  seeds {len(rows)}  best {statistics.mean(bests):.4f} (sd {sd:.4f})"
            f"  epochs {statistics.mean(r['epochs'] for r in rows):6.1f}"
            f"  pruned {statistics.mean(r['pruned'] for r in rows):4.1f}"
            f"  wall {statistics.mean(r['wall'] for r in rows):7.1f} s"
            + "".join(
                f"  {label} {statistics.mean(r[key] for r in rows):.2f}"
                for key, label in (("slots", "slot use"), ("load", "load"))
                if all(r.get(key) is not None for r in rows)
            )
        )
    seeds = sorted({s for (arm, s) in by if (BASELINE, s) in by and (CANDIDATE, s) in by})
    if not seeds:
        return
    print(f"\n{CANDIDATE} vs {BASELINE} (target: gap <= {TOLERANCE}, epochs <= {EPOCHS_RATIO}x):")
    gaps, ratios, met = [], [], 0
    for seed in seeds:
        base, cand = by[(BASELINE, seed)], by[(CANDIDATE, seed)]
        gap, ratio = base["best"] - cand["best"], cand["epochs"] / base["epochs"]
        reached = gap <= TOLERANCE and ratio <= EPOCHS_RATIO
        met += reached
        gaps.append(gap)
        ratios.append(ratio)
        print(
            f"  seed {seed}: best {cand['best']:.4f} vs {base['best']:.4f} (gap {gap:+.4f}),"
            f" epochs {cand['epochs']} vs {base['epochs']} ({ratio:.2f}x),"
            f" wall {cand['wall'] / base['wall']:.2f}x: {'met' if reached else 'NOT met'}"
        )
    gap, ratio = statistics.mean(gaps), statistics.mean(ratios)
    reached = gap <= TOLERANCE and ratio <= EPOCHS_RATIO
    print(
        f"  mean: gap {gap:+.4f}, epochs {ratio:.3f}x; target met in {met} of {len(seeds)}"
        f" seeds; on the means: {'target met' if reached else 'target NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--log", help="append each study's figures here (JSON lines)")
    parser.add_argument("--summarize", nargs="+", help="print the summary of logs and exit")
    args = parser.parse_args()
    if args.summarize:
        lines = [line for path in args.summarize for line in Path(path).read_text().splitlines()]
        rows = [json.loads(line) for line in lines if line.strip()]
        print_summary(rows, " + ".join(args.summarize))
        return
    # a stopped run still stops its redis, worker and API (``finally`` in ``run``); its log stays
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = run(args)
    print_summary(
        results,
        f"Fashion-MNIST MLP study, {args.trials} trials of up to {args.epochs} epochs,"
        f" {args.parallel} in parallel, seeds {args.seeds}",
    )


if __name__ == "__main__":
    main()

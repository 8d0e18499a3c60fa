"""The table of ``bench/multihost.py``: one line per model, link, batch, host count and variant.

Rows are the dicts ``multihost.measure`` makes (model, rate, batch, hosts, round, system,
variant, samples_per_second, step_seconds, comm_seconds, test_accuracy, load). Throughput and
step time are the fastest run's; efficiency and the gradq/DDP ratio are medians of per-round
values (paired: each against the run of the same round), with every round's value listed.
"""

from __future__ import annotations

import statistics


def _find(rows: list[dict], **match) -> list[dict]:
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def _efficiencies(rows: list[dict], run_rows: list[dict], system: str) -> list[float]:
    """thr(N) / (N thr(1)) of each run against the plain 1-host run of its round."""
    out = []
    for run in run_rows:
        key = {k: run[k] for k in ("model", "rate", "batch", "round")}
        single = _find(rows, hosts=1, system=system, variant="", **key)
        if single:
            out.append(run["samples_per_second"] / (run["hosts"] * single[0]["samples_per_second"]))
    return out


def _ratios(rows: list[dict], runs: list[dict]) -> list[float]:
    """gradq step / DDP step of each run against DDP's run of the same round."""
    out = []
    for run in runs:
        key = {k: run[k] for k in ("model", "rate", "batch", "hosts", "round")}
        ddp = _find(rows, system="ddp", **key)
        if ddp:
            out.append(run["step_seconds"] / ddp[0]["step_seconds"])
    return out


def _median(values: list[float], fmt: str = "{:.2f}") -> str:
    return fmt.format(statistics.median(values)) if values else "-"


def print_report(rows: list[dict]) -> None:
    print(
        "\n| model | link | batch | hosts | gradq variant | samples/s | step ms | comm ms | eff "
        "| DDP samples/s | DDP step ms | DDP eff | gradq/DDP step (paired: median; rounds) "
        "| accuracy gradq / DDP | load |"
    )
    print("|---" * 15 + "|")
    cells = dict.fromkeys((r["model"], r["rate"], r["batch"], r["hosts"]) for r in rows)
    for model, rate, batch, hosts in cells:
        key = dict(model=model, rate=rate, batch=batch, hosts=hosts)
        ddp_runs = _find(rows, system="ddp", **key)
        for variant in dict.fromkeys(r["variant"] for r in _find(rows, system="gradq", **key)):
            runs = _find(rows, system="gradq", variant=variant, **key)
            g = max(runs, key=lambda r: r["samples_per_second"])
            ratios = _ratios(rows, runs)
            rounds = ", ".join(f"{x:.2f}" for x in ratios)
            ddp = f"| {_median(_efficiencies(rows, ddp_runs, 'ddp'))} "
            d = max(ddp_runs, key=lambda r: r["samples_per_second"]) if ddp_runs else None
            if d is not None:
                ddp = f"| {d['samples_per_second']:,.0f} | {d['step_seconds'] * 1e3:.1f} " + ddp
                accuracy = f"{g['test_accuracy']:.3f} / {d['test_accuracy']:.3f}"
            else:
                ddp, accuracy = "| - | - | - ", f"{g['test_accuracy']:.3f} / -"
            loads = [r["load"] for r in runs + ddp_runs]
            print(
                f"| {model} | {rate / 1000:g} Gbit/s | {batch} | {hosts} | {variant or 'plain'} "
                f"| {g['samples_per_second']:,.0f} | {g['step_seconds'] * 1e3:.1f} "
                f"| {g['comm_seconds'] * 1e3:.2f} "
                f"| {_median(_efficiencies(rows, runs, 'gradq'))} {ddp}"
                f"| **{_median(ratios)}x** ({rounds}) | {accuracy} "
                f"| {min(loads):.1f}-{max(loads):.1f} |"
            )

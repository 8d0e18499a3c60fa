"""The table of ``bench/multihost.py``: one line per model, link, batch, host count and variant.

Rows are the dicts ``multihost.measure`` makes (model, rate, batch, hosts, round, system,
variant, samples_per_second, step_seconds, comm_seconds, test_accuracy, load). Each multi-host
cell also shows its wire floor (``wire_floor_seconds``) and that floor over DDP's step: the least
gradq/DDP ratio any float32 allreduce could reach on that link. Throughput and
step time are the fastest run's; efficiency and the gradq/DDP ratio are medians of per-round
values (paired: each against the run of the same round), with every round's value listed.
"""

from __future__ import annotations

import statistics

from bench.multihost_models import gradient_bytes

# tbf counts whole Ethernet frames: an MTU of 1500 carries 1448 bytes of TCP payload (20 IP, 20
# TCP and 12 timestamp-option bytes) in a 1514-byte frame (plus a 14-byte Ethernet header)
FRAME_BYTES, PAYLOAD_BYTES = 1514, 1448


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


def wire_floor_seconds(model: str, rate_mbit: float, hosts: int) -> float:
    """The least time one allreduce of ``model``'s gradient S can take on links of ``rate_mbit``:
    each host sends S (2 hosts) or 2(N-1)/N * S (N >= 3; the bandwidth-optimal bound, Patarasuk
    & Yuan, JPDC 2009) through its own link, framed as TCP over Ethernet. tbf's burst does not
    lower it over many steps: the bucket refills only while the link idles."""
    size = gradient_bytes(model)
    per_host = size if hosts == 2 else 2 * (hosts - 1) / hosts * size
    return per_host * FRAME_BYTES / PAYLOAD_BYTES * 8 / (rate_mbit * 1e6)


def _floor(model: str, rate: float, hosts: int, ddp_runs: list[dict]) -> str:
    """The cell's wire floor in ms and, against DDP's fastest step, the least ratio possible."""
    if hosts < 2:
        return "-"
    floor = wire_floor_seconds(model, rate, hosts)
    if not ddp_runs:
        return f"{floor * 1e3:.2f}"
    return f"{floor * 1e3:.2f} ({floor / min(r['step_seconds'] for r in ddp_runs):.2f}x)"


def _median(values: list[float], fmt: str = "{:.2f}") -> str:
    return fmt.format(statistics.median(values)) if values else "-"


def print_report(rows: list[dict]) -> None:
    print(
        "\n| model | link | batch | hosts | gradq variant | samples/s | step ms | comm ms | eff "
        "| DDP samples/s | DDP step ms | DDP eff | gradq/DDP step (paired: median; rounds) "
        "| wire floor ms (/ DDP step) | accuracy gradq / DDP | load |"
    )
    print("|---" * 16 + "|")
    cells = dict.fromkeys((r["model"], r["rate"], r["batch"], r["hosts"]) for r in rows)
    for model, rate, batch, hosts in cells:
        key = dict(model=model, rate=rate, batch=batch, hosts=hosts)
        ddp_runs = _find(rows, system="ddp", **key)
        floor = _floor(model, rate, hosts, ddp_runs)  # the same for every variant of the cell
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
                f"| **{_median(ratios)}x** ({rounds}) | {floor} "
                f"| {accuracy} "
                f"| {min(loads):.1f}-{max(loads):.1f} |"
            )

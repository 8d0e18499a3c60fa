"""Dashboard figures against the issue's targets, in a real browser on the real server.

- latency: a progress update written like shard 0 writes it (points pushed, then the progress
  event) -> the point drawn in the job page's chart (p95 target <= 1 s; MLflow polls every 8 s)
- the jobs page with 10,000 jobs in Redis: server time p95 (<= 200 ms), plus its filters
- a 100,000-step job: navigation -> the loss chart painted (<= 1 s), once as recorded by the
  worker (2,000 stored points) and once with 100,000 raw points stored (server downsampling)
- JavaScript shipped by all /ui pages together (<= 150 KB uncompressed)

    python bench/ui.py [--updates 40] [--jobs 10000]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from worker.fence import Unfenced

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEC = {
    "name": "bench",
    "dataset": {"name": "digits"},
    "model": {"layers": [{"type": "dense", "units": 10}]},
    "optimizer": {"type": "adam", "lr": 0.01},
    "batch_size": 32,
    "epochs": 20,
}
# Stamps the moment the chart has drawn a new point count: the frame after data-points changes.
PAINT_PROBE = """
window.__drawn = [];
new MutationObserver((changes) => {
  for (const c of changes) {
    if (c.attributeName !== "data-points") continue;
    const n = Number(c.target.dataset.points);
    requestAnimationFrame(() => window.__drawn.push([n, Date.now(), performance.now()]));
  }
}).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-points"] });
"""


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def running_job(store, steps_total: int) -> str:
    job_id = store.create(SPEC, "default")["id"]
    store.update(job_id, {"steps_total": steps_total, "attempt": 0}, status="running")
    return job_id


def bench_latency(url: str, store, browser, updates: int) -> list[float]:
    """Seconds from a point's push to the frame that draws it, per update."""
    from worker.loss_curve import LossRecorder

    job_id = running_job(store, steps_total=updates)
    recorder = LossRecorder(Unfenced(store.redis), job_id, steps_total=updates)
    page = browser.new_page()
    page.add_init_script(PAINT_PROBE)
    page.goto(f"{url}/ui/jobs/{job_id}")
    page.wait_for_function("window.__drawn.length > 0")  # the first (empty) draw
    latencies = []
    for step in range(1, updates + 1):
        recorder.add(step, 1.0 / step)
        written = time.time()
        recorder.flush()  # what shard 0's report() does: points, then the progress event
        store.update(job_id, {"step": step, "progress": step / updates}, event="progress")
        page.wait_for_function(f"window.__drawn.some(([n]) => n >= {step})", timeout=10_000)
        drawn = page.evaluate(f"window.__drawn.find(([n]) => n >= {step})[1]")
        latencies.append(drawn / 1000 - written)
        time.sleep(0.25)  # the worker reports every 0.5 s; viewers see no faster stream
    page.close()
    return latencies


def fill_jobs(store, count: int) -> None:
    """``count`` finished jobs with a 20-epoch history each, for tenant default."""
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e, "val_accuracy": 0.9, "seconds": 1.0}
        for e in range(1, 21)
    ]
    pipe = store.redis.pipeline(transaction=False)
    for i in range(count):
        record = store.create(SPEC | {"name": f"bench-{i}"}, "default")
        record.update(status="succeeded", history=history, progress=1.0, epoch=20)
        record.update(started_at=record["created_at"], finished_at=record["created_at"])
        pipe.set(f"gradq:job:{record['id']}", json.dumps(record))
        if len(pipe) >= 500:
            pipe.execute()
    pipe.execute()


def bench_jobs_page(url: str, paths: list[str], rounds: int) -> dict[str, float]:
    import httpx

    out = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for path in paths:
            client.get(path).raise_for_status()  # warm
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - start)
                response.raise_for_status()
            out[path] = p95(times)
    return out


def long_job(store, raw_points: bool) -> str:
    """A finished 100,000-step job: recorded by LossRecorder, or 100,000 raw points."""
    import numpy as np

    from worker.loss_curve import POINT, LossRecorder, loss_key

    steps = 100_000
    job_id = running_job(store, steps_total=steps)
    if raw_points:  # what a recorder with MAX_POINTS >= 100,000 would have stored
        step = np.arange(1, steps + 1, dtype=np.float64)
        points = np.stack([step, 1.0 / step, np.full(steps, time.time())], axis=1)
        store.redis.set(loss_key(job_id), points.astype(POINT).tobytes())
    else:
        recorder = LossRecorder(Unfenced(store.redis), job_id, steps_total=steps)
        for s in range(1, steps + 1):
            recorder.add(s, 1.0 / s)
        recorder.flush(final_step=steps)
    store.transition(job_id, "succeeded", changes={"progress": 1.0, "step": steps})
    return job_id


def bench_paint(url: str, browser, job_id: str, rounds: int) -> float:
    """p95 milliseconds from navigation start to the frame with the loss curve drawn."""
    times = []
    for _ in range(rounds):
        page = browser.new_page()
        page.add_init_script(PAINT_PROBE)
        page.goto(f"{url}/ui/jobs/{job_id}")
        page.wait_for_function("window.__drawn.some(([n]) => n > 0)", timeout=10_000)
        times.append(page.evaluate("window.__drawn.find(([n]) => n > 0)[2]"))
        page.close()
    return p95(times)


def javascript_shipped(url: str, browser, paths: list[str]) -> dict[str, int]:
    """Bytes of every distinct script the /ui pages load (uncompressed): those the browser
    fetched on ``paths``, plus any a template names that those pages did not load (the model
    page's canvas script needs a trained model, which this benchmark does not make)."""
    import httpx

    scripts: set[str] = set()
    page = browser.new_page()
    page.on("request", lambda r: scripts.add(r.url) if r.resource_type == "script" else None)
    for path in paths:
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
    page.close()
    scripts |= {url + src for src in template_scripts()}
    return {s: len(httpx.get(s, headers={"Accept-Encoding": "identity"}).content) for s in scripts}


def template_scripts() -> set[str]:
    """The ``/ui/static/...`` script paths the dashboard's templates reference."""
    templates = ROOT / "api" / "ui" / "templates"
    found = set()
    for template in templates.glob("*.html"):
        found |= set(re.findall(r'<script src="(/ui/static/[^"]+)"', template.read_text()))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()

    import redis
    from playwright.sync_api import sync_playwright

    from tests.api.live import LiveApi
    from tests.harness import RedisServer
    from tests.ui.browser import launch
    from worker.jobs import JobStore

    work = Path(tempfile.mkdtemp(prefix="gradq-bench-ui-"))
    server = RedisServer(work / "redis")
    api = LiveApi(server.url, work / "api.log")  # no keys: loopback, tenant "default"
    store = JobStore(redis.Redis.from_url(server.url))
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            latencies = bench_latency(api.url, store, browser, args.updates)
            recorded, raw = long_job(store, raw_points=False), long_job(store, raw_points=True)
            paint_recorded = bench_paint(api.url, browser, recorded, 10)
            paint_raw = bench_paint(api.url, browser, raw, 10)
            pages = ["/ui/jobs", f"/ui/jobs/{recorded}", "/ui/jobs/new", "/ui/models"]
            pages += ["/ui/datasets", f"/ui/compare?jobs={recorded},{raw}"]
            shipped = javascript_shipped(api.url, browser, pages)
            browser.close()
        started = time.perf_counter()
        fill_jobs(store, args.jobs)
        filled = time.perf_counter() - started
        page_times = bench_jobs_page(
            api.url,
            ["/ui/jobs", "/ui/jobs?status=succeeded", "/ui/jobs?name=bench-9999", "/v1/jobs"],
            args.rounds,
        )
    finally:
        api.stop()
        server.stop()

    print(
        f"progress -> browser latency over {len(latencies)} updates: "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {p95(latencies) * 1000:.0f} ms "
        f"(target <= 1000 ms; 8 s polling averages 4000 ms)"
    )
    print(
        f"100,000-step job, chart painted after navigation (p95 of 10): "
        f"{paint_recorded:.0f} ms as recorded (2,000 points), "
        f"{paint_raw:.0f} ms with 100,000 raw points stored (target <= 1000 ms)"
    )
    print(
        f"jobs page server time p95 with {args.jobs} jobs (filled in {filled:.1f} s), "
        f"{args.rounds} requests each (target <= 200 ms):"
    )
    for path, seconds in page_times.items():
        print(f"  {path:32s} {seconds * 1000:7.1f} ms")
    total = sum(shipped.values())
    print(f"JavaScript shipped by /ui pages: {total / 1024:.1f} KB (target <= 150 KB)")
    for url, size in sorted(shipped.items(), key=lambda item: -item[1]):
        print(f"  {url.split('/ui/static/', 1)[-1]:32s} {size / 1024:6.1f} KB")


if __name__ == "__main__":
    main()

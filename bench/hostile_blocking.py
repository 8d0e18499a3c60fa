"""How long one hostile request stalls everyone else: /healthz latency while it is processed.

Starts a private redis-server and ``uvicorn api.app:app`` (one process), stores a digits MLP,
then sends each hostile request of issue 10 from one thread while another polls ``/healthz``
every 5 ms. Prints the hostile request's answer and time, and the worst ``/healthz`` latency
during it as a ratio to the worst ``/healthz`` latency of an idle period in the same run.

    python bench/hostile_blocking.py
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.predict_latency import KEY, serving_model  # noqa: E402


def hostile_requests(model_id: str) -> dict[str, dict]:
    """name -> httpx.post keyword arguments (path, body)."""
    from PIL import Image

    from tests.api.drawings import png_header_only
    from tests.api.specs import digits_spec

    spec = digits_spec(model={"layers": [{"type": "relu"}] * 1_000_000})  # 16.0 MB compact
    picture = io.BytesIO()
    Image.new("L", (4000, 4000), 255).save(picture, format="PNG")
    predict = f"/v1/models/{model_id}/predict"
    return {
        "16 MB spec, 10^6 layers": {
            "url": "/v1/jobs",
            "content": json.dumps(spec, separators=(",", ":")).encode(),
        },
        "predict, 300k numbers": {
            "url": predict,
            "content": json.dumps({"inputs": [0.5] * 300_000}).encode(),
        },
        "predict, 4000x4000 PNG": {"url": predict, "files": {"file": picture.getvalue()}},
        "predict, 15000x15000 bomb": {
            "url": predict,
            "files": {"file": png_header_only(15000, 15000)},
        },
        "predict, 3000-deep body": {
            "url": predict,
            "content": b'{"inputs": ' + b"[" * 3000 + b"1" + b"]" * 3000 + b"}",
        },
    }


def worst_healthz_ms(base: str, stop: threading.Event) -> list[float]:
    """Poll /healthz until ``stop``; the latencies in ms."""
    import httpx

    latencies = []
    with httpx.Client(base_url=base, timeout=60) as client:
        while True:  # at least one probe, however quick the hostile request
            start = time.perf_counter()
            client.get("/healthz")
            latencies.append(1000 * (time.perf_counter() - start))
            if stop.is_set():
                return latencies
            time.sleep(0.005)


def measure(base: str, request: dict | None, idle_seconds: float = 1.0) -> tuple[str, float, float]:
    """(answer, seconds of the hostile request, worst /healthz ms meanwhile)."""
    import httpx

    stop, result = threading.Event(), {}
    poller = threading.Thread(target=lambda: result.update(lat=worst_healthz_ms(base, stop)))
    poller.start()
    start = time.perf_counter()
    answer = "idle"
    if request is None:
        time.sleep(idle_seconds)
    else:
        headers = {"Authorization": f"Bearer {KEY}"}
        if "content" in request:
            headers["Content-Type"] = "application/json"
        response = httpx.post(base + request.pop("url"), headers=headers, timeout=120, **request)
        answer = f"{response.status_code} {response.text[:60]}"
    elapsed = time.perf_counter() - start
    time.sleep(0.05)  # a probe sent while the request ran may still be waiting
    stop.set()
    poller.join()
    return answer, elapsed, max(result["lat"])


def main() -> None:
    with serving_model(workers=1) as (port, model_id, _):
        base = f"http://127.0.0.1:{port}"
        idle = max(measure(base, None)[2] for _ in range(2))
        print(f"idle: worst /healthz {idle:.1f} ms")
        for name, request in hostile_requests(model_id).items():
            answer, seconds, worst = measure(base, request)
            print(
                f"{name:<28} {seconds:6.2f} s  worst /healthz {worst:7.1f} ms"
                f" ({worst / idle:5.1f}x idle)  -> {answer}"
            )


if __name__ == "__main__":
    main()

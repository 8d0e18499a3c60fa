"""Prediction latency through the real server: p50/p99 and requests/s at concurrency 1 and 32.

Starts a private redis-server, trains a digits MLP in-process with nnlib and stores it with the
ModelStore, starts ``uvicorn api.app:app`` on loopback, then runs the load generator in another
process (``--load``): keep-alive HTTP/1.1 over raw asyncio sockets, a fixed number of requests per
concurrency level, every answer checked for status 200.

    python bench/predict_latency.py [--requests 4000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = "bench-key-0123456789abcdef"


def train_and_store(redis_url: str) -> tuple[str, list[float]]:
    """A digits MLP 64-64-10 (ReLU) trained 10 epochs, stored for tenant "bench"."""
    import redis

    from tests.api.models_fixture import trained_digits_model
    from worker.datasets.builtin import digits
    from worker.models_store import ModelStore

    model, data = trained_digits_model(units=64, epochs=10)
    accuracy = float((model.predict(data.x_test).argmax(1) == data.y_test).mean())
    stored = ModelStore(redis.Redis.from_url(redis_url)).save(
        model,
        tenant="bench",
        job_id="job_bench",
        preprocessing=data.preprocessing,
        classes=data.classes,
        num_classes=data.num_classes,
        metrics={"test_accuracy": accuracy},
    )
    sample = digits().x_test[0].astype(float).tolist()
    return stored["id"], sample


def start_server(redis_url: str, workers: int, log: Path, plain: bool = False):
    from tests.harness import free_port, wait_until, worker_env

    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    command += ["--no-access-log", *(["--loop", "asyncio", "--http", "h11"] if plain else [])]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=worker_env(redis_url, GRADQ_API_KEYS=f"bench:{KEY}"),
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,  # noqa: SIM115
    )

    def healthy() -> bool:
        import httpx

        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited; see {log}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, 30, "uvicorn")
    return process, port


# ---- the load generator (runs in its own process) -------------------------------------------


@contextlib.contextmanager
def serving_model(workers: int, plain: bool = False):
    """A private redis-server and ``workers`` uvicorn processes serving a freshly stored digits
    MLP -> ``(port, model_id, sample)``; both servers are stopped on exit."""
    from tests.harness import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp) / "redis")
        server = None
        try:
            model_id, sample = train_and_store(redis_server.url)
            server, port = start_server(redis_server.url, workers, Path(tmp) / "api.log", plain)
            yield port, model_id, sample
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)
            redis_server.stop()


async def _connection(port: int, request: bytes, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != b"200":
                raise RuntimeError(f"status {status!r}: {body[:200]!r}")
    finally:
        writer.close()


async def _load(port: int, model_id: str, sample: list, concurrency: int, total: int) -> dict:
    body = json.dumps({"inputs": sample}).encode()
    request = (
        f"POST /v1/models/{model_id}/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    warm: list[float] = []
    await asyncio.gather(*(_connection(port, request, 20, warm) for _ in range(concurrency)))
    latencies: list[float] = []
    per_connection = total // concurrency
    start = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, request, per_connection, latencies) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "requests_per_second": len(latencies) / elapsed,
    }


def load_main(args) -> None:
    result = asyncio.run(
        _load(args.port, args.model, json.loads(args.sample), args.concurrency, args.requests)
    )
    print(json.dumps(result))


# ---- orchestration ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="per concurrency level")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--plain", action="store_true", help="asyncio + h11 (no uvloop/httptools)")
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        args.concurrency = args.concurrency[0]
        return load_main(args)

    with serving_model(args.workers, args.plain) as (port, model_id, sample):
        stack = "asyncio+h11" if args.plain else "uvloop+httptools"
        print(
            f"digits MLP {model_id}; uvicorn workers={args.workers} ({stack}); "
            f"{args.requests} requests per level"
        )
        for concurrency in args.concurrency:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--load",
                    "--port",
                    str(port),
                    "--model",
                    model_id,
                    "--sample",
                    json.dumps(sample),
                    "--concurrency",
                    str(concurrency),
                    "--requests",
                    str(args.requests),
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            r = json.loads(out.stdout)
            print(
                f"concurrency {r['concurrency']:>3}: p50 {r['p50_ms']:.2f} ms  "
                f"p99 {r['p99_ms']:.2f} ms  {r['requests_per_second']:.0f} req/s  "
                f"({r['requests']} requests)"
            )


if __name__ == "__main__":
    main()

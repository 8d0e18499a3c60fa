"""Prometheus metrics: requests by route template, latency, predictions, jobs and queue depth.

Each app owns its registry, so tests can build many apps. Job counts and queue depth are read
from Redis when ``/metrics`` is scraped, not kept in the process (several API processes agree).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class ApiMetrics:
    """The app's metric objects; ``middleware`` wraps the ASGI app to record requests."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gradq_http_requests",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gradq_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.prediction = Histogram(
            "gradq_prediction_duration_seconds",
            "Model forward pass time per prediction request",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch_redis(self, snapshot) -> None:
        """Register a collector calling ``snapshot() -> (jobs_by_status, queue_depths)``."""
        self.registry.register(_RedisCollector(snapshot))


class _RedisCollector:
    def __init__(self, snapshot):
        self.snapshot = snapshot

    def describe(self):
        return []

    def collect(self):
        jobs = GaugeMetricFamily("gradq_jobs", "Jobs by status", labels=["status"])
        queues = GaugeMetricFamily("gradq_queue_depth", "Tasks waiting per queue", labels=["queue"])
        try:
            by_status, depths = self.snapshot()
        except Exception:  # noqa: BLE001 - a scrape must not fail because Redis is down
            by_status, depths = {}, {}
        for name, count in sorted(by_status.items()):
            jobs.add_metric([name], count)
        for name, count in sorted(depths.items()):
            queues.add_metric([name], count)
        yield jobs
        yield queues


class MetricsMiddleware:
    """Plain ASGI: counts and times every HTTP request under its route template."""

    def __init__(self, app, metrics: ApiMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status_code = 500

        async def recording_send(message):
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            template = route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status_code)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)


def route_template(scope) -> str:
    """The matched route's path template; ``<unmatched>`` only when no route matched.

    FastAPI's own routes set ``scope["route"]``; plain Starlette routes (``/docs``,
    ``/openapi.json``, ``/redoc``) only set ``scope["endpoint"]``: found among the app's routes.
    """
    if scope.get("gradq.route"):
        return scope["gradq.route"]
    route = scope.get("route")
    if route is not None:
        return route.path
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        for candidate in getattr(scope.get("app"), "routes", ()):
            if getattr(candidate, "endpoint", None) is endpoint:
                return candidate.path
    return "<unmatched>"

"""The hub's own Prometheus metrics, at /metrics.

Counters and histograms live in prometheus-client's default registry. When the hub runs as
several processes (``edge-hub serve --workers N``) PROMETHEUS_MULTIPROC_DIR is set before they
start and /metrics sums every process's files (prometheus-client's multiprocess mode). The job
queue's depth is read from the database at scrape time, so every worker tells the same.

  edge_hub_polls_total{result}          desired-state polls: 200 (changed) or 304 (not modified)
  edge_hub_requests_seconds{route}      latency of requests by kind of route
  edge_hub_ingested_records_total       telemetry records stored
  edge_hub_jobs_total{task,outcome}     background jobs done or failed
  edge_hub_job_seconds{task}            their durations
  edge_hub_retrains_total{outcome}      retrain outcomes (deployed, not_better, failed, ...)
  edge_hub_job_queue{queue,status}      jobs waiting (todo) and running (doing), per queue
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

POLLS = Counter("edge_hub_polls_total", "Desired-state polls by result (200 changed, 304 not modified)",
                ["result"])
REQUESTS = Histogram("edge_hub_requests_seconds", "Request latency by kind of route", ["route"],
                     buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
INGESTED = Counter("edge_hub_ingested_records_total", "Telemetry records stored")
JOBS = Counter("edge_hub_jobs_total", "Background jobs by task and outcome", ["task", "outcome"])
JOB_SECONDS = Histogram("edge_hub_job_seconds", "Background job durations", ["task"],
                        buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600, 1800))
RETRAINS = Counter("edge_hub_retrains_total", "Retrain runs by outcome", ["outcome"])

_ROUTES = [("desired", re.compile(r"^/api/v1/gateways/[^/]+/desired$")),
           ("telemetry", re.compile(r"^/api/v1/gateways/[^/]+/telemetry$")),
           ("status", re.compile(r"^/api/v1/gateways/[^/]+/status$")),
           ("bundle", re.compile(r"^/api/v1/bundles/"))]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_of(path: str) -> str:
    for name, pattern in _ROUTES:
        if pattern.match(path):
            return name
    return "other"


class MetricsMiddleware:
    """Counts polls and times requests (pure ASGI: streamed bodies pass untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_of(scope.get("path", ""))
        start = time.perf_counter()
        status = {"code": 0}

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            _child(REQUESTS, route).observe(time.perf_counter() - start)
            if route == "desired" and status["code"] in (200, 304):
                _child(POLLS, str(status["code"])).inc()


_children: dict[tuple[int, str], Any] = {}


def _child(metric: Counter | Histogram, label: str) -> Any:
    """``metric.labels(label)``, looked up once (labels() takes a lock and builds a tuple on
    every call; this is on the path of every request)."""
    key = (id(metric), label)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(label)
    return child


class QueueCollector(Collector):
    """edge_hub_job_queue from procrastinate's table (PostgreSQL; nothing on SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("edge_hub_job_queue", "Jobs waiting (todo) or running (doing)",
                                   labels=["queue", "status"])
        if self.engine.dialect.name == "postgresql":
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(text(
                        "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs "
                        "WHERE status IN ('todo', 'doing') GROUP BY 1, 2")).all()
            except Exception as exc:  # a scrape never fails for the database being away
                log.warning("job queue depth unavailable: %s", str(exc).splitlines()[0])
                rows = []
            for queue, status, count in rows:
                family.add_metric([str(queue).rsplit(".", 1)[-1], str(status)], float(count))
        yield family


def metrics_registry(engine: Engine) -> CollectorRegistry:
    """This process's metrics, or every worker's in multiprocess mode, and the queue's depth."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for collector in _own_collectors():
            registry.register(collector)
    registry.register(QueueCollector(engine))
    return registry


def render(engine: Engine) -> tuple[bytes, str]:
    """The /metrics body."""
    return generate_latest(metrics_registry(engine)), CONTENT_TYPE_LATEST


def _own_collectors() -> list[Collector]:
    return [POLLS, REQUESTS, INGESTED, JOBS, JOB_SECONDS, RETRAINS]


__all__ = ["INGESTED", "JOBS", "JOB_SECONDS", "POLLS", "REGISTRY", "REQUESTS", "RETRAINS",
           "MetricsMiddleware", "metrics_registry", "render", "route_of"]

"""The hub's HTTP API (FastAPI), assembled: the routers of hub.api, the hub context, the
background jobs. Gateways authenticate with their own bearer token and can only read their own
desired state, download the bundles deployed to them, and write their own telemetry and status;
admin tokens publish, deploy and roll back. OpenAPI schema at /docs and /openapi.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from hub.api import ROUTERS
from hub.api.schemas import TelemetryBatch
from hub.background import lifespan
from hub.context import HubContext
from hub.fleet.metrics import MetricsMiddleware
from hub.limits import HubLimits

log = logging.getLogger(__name__)


def create_app(engine: Engine, data_dir: Path, keys: list[Path] | None = None,
               evaluate_interval_s: float = 1.0, token_cache_s: float | None = None,
               limits: HubLimits | None = None, run_queue: bool = True,
               queues: list[str] | None = None) -> FastAPI:
    """``run_queue``: on PostgreSQL, whether this process also works the job queue (``queues``
    of it, default all)."""
    limits = limits or HubLimits()
    if token_cache_s is not None:
        limits = limits.model_copy(update={"token_cache_s": token_cache_s})
    hub = HubContext(engine, data_dir, list(keys or []), limits)
    app = FastAPI(title="factory-edge hub", version="0.3.0",
                  lifespan=lifespan(hub, evaluate_interval_s, run_queue, queues),
                  description="Model registry, rollouts, status and telemetry for edge gateways.",
                  strict_content_type=False)  # agents of before 0.3 may send JSON without a type
    app.state.hub = hub
    app.state.evaluate_now = hub.evaluate_now  # tests judge rollouts without waiting for the loop
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(MetricsMiddleware)
    app.add_exception_handler(OperationalError, _database_busy)
    _document_raw_bodies(app)
    return app


async def _database_busy(request: Request, exc: Exception) -> Response:
    """SQLite's write lock still held after the busy timeout: 503 with Retry-After (the agent's
    uploader retries), one log line; any other database error is the server error it is."""
    if "database is locked" not in str(exc):
        raise exc
    log.warning("database busy on %s %s: answered 503, retry after 2 s", request.method,
                request.url.path)
    return JSONResponse({"detail": "the hub's database is busy: retry in a moment"},
                        status_code=503, headers={"Retry-After": "2"})


def _document_raw_bodies(app: FastAPI) -> None:
    """Routes that read their body themselves (streamed) refer to schemas FastAPI does not see."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default()
            defs = TelemetryBatch.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs.pop("$defs", {}))
            components["TelemetryBatch"] = defs
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

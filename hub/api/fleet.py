"""The hub's own Prometheus metrics (hub.fleet.metrics): polls, 304 ratio, ingest, job queue."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response

from hub.api.deps import HubDep
from hub.fleet.metrics import render

router = APIRouter(tags=["status"])


@router.get("/metrics", include_in_schema=False)
async def metrics(hub: HubDep) -> Response:
    """Prometheus text format; open like /healthz (what it shows is counts, not fleet data)."""
    body, content_type = await asyncio.to_thread(render, hub.engine)
    return Response(body, media_type=content_type)

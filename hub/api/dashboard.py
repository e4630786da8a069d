"""The dashboard page and the model-health series it charts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.api.auth import Admin
from hub.api.bodies import BoundedRoute
from hub.api.deps import HubDep
from hub.api.schemas import errors
from hub.fleet import retention
from hub.storage import GatewayMetric

router = APIRouter(route_class=BoundedRoute, tags=["dashboard"])

PAGE = Path(__file__).parent.parent / "static" / "dashboard.html"


@router.get("/dashboard", include_in_schema=False)
def dashboard() -> FileResponse:
    """The fleet, model health over time, versions with their cards, the audit trail.
    A static page: it asks for an admin token and reads the API with it."""
    return FileResponse(PAGE, media_type="text/html")


@router.get("/api/v1/retention", responses=errors(401, 403))
def kept(hub: HubDep, who: Admin) -> dict[str, Any]:
    """Days kept per kind of data and the oldest time kept (edge-hub retention set KIND=DAYS)."""
    return retention.covered(hub.engine)


@router.get("/api/v1/metrics", responses=errors(401, 403, 422))
def metrics(hub: HubDep, who: Admin, model: Annotated[str | None, Query(max_length=128)] = None,
            since: Annotated[float, Query(ge=0, le=4_102_444_800.0, allow_inf_nan=False)] = 0.0,
            ) -> list[dict[str, Any]]:
    """Model health over time as the gateways reported it (accuracy, largest PSI, health)."""
    with Session(hub.engine) as s:
        q = select(GatewayMetric).where(GatewayMetric.at >= since).order_by(GatewayMetric.at)
        if model:
            q = q.where(GatewayMetric.model == model)
        return [{"gateway_id": m.gateway_id, "at": m.at, "model": m.model, "version": m.version,
                 "accuracy": m.accuracy, "drift_score": m.drift_score, "health": m.health,
                 **(m.figures or {})}
                for m in s.scalars(q.limit(20_000))]

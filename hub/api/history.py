"""What happened: the version history and the hub's hash-chained audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import desc, select
from sqlalchemy.orm import Session

from hub.api.auth import Admin
from hub.api.bodies import BoundedRoute
from hub.api.deps import HubDep
from hub.api.schemas import errors
from hub.audit import export
from hub.storage import HistoryEntry

router = APIRouter(route_class=BoundedRoute, tags=["history"])

Since = Annotated[float, Query(ge=0, le=4_102_444_800.0, allow_inf_nan=False,
                               description="Only entries at or after this epoch time.")]


@router.get("/api/v1/audit", responses=errors(401, 403, 422))
def audit_trail(hub: HubDep, who: Admin, since: Since = 0.0) -> list[dict[str, Any]]:
    """The hub's hash-chained audit trail; ``actor`` names who did it (token:NAME, cli:USER)."""
    return export(hub.engine, since)


@router.get("/api/v1/history", responses=errors(401, 403, 422))
def history(hub: HubDep, who: Admin, model: Annotated[str | None, Query(max_length=128)] = None,
            limit: Annotated[int, Query(ge=1, le=5000, description="Newest entries, at most.")] = 500,
            ) -> list[dict[str, Any]]:
    """Version history: published, deployed, activated, promoted, rejected, rolled back."""
    with Session(hub.engine) as s:
        q = select(HistoryEntry).order_by(desc(HistoryEntry.id)).limit(limit)
        if model:
            q = q.where(HistoryEntry.model == model)
        return [{"at": h.at, "model": h.model, "version": h.version, "event": h.event,
                 "gateway_id": h.gateway_id, "detail": h.detail, "actor": h.actor} for h in s.scalars(q)]

"""Config overlays held for a gateway or group:NAME, taken by the gateways with their desired
state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy.orm import Session

from agent.errors import AgentError
from hub.api.auth import Admin
from hub.api.bodies import BoundedRoute
from hub.api.deps import HubDep, Target
from hub.api.schemas import IdResult, OverlayRequest, errors
from hub.overlays import current_overlays, set_overlay
from hub.storage import acting_as

router = APIRouter(route_class=BoundedRoute, tags=["config"])


@router.put("/api/v1/config/{target}", responses=errors(400, 401, 403, 413, 422))
def put_config(target: Target, req: OverlayRequest, hub: HubDep, who: Admin) -> IdResult:
    """Hold config settings for a gateway or group:NAME; the gateways take them with their
    desired state, validate them against their own file and report the outcome. The audit
    trail names the token's holder (and ``author``, when given, as on whose behalf)."""
    author = who.actor if not req.author else f"{req.author} (via {who.actor})"
    try:
        with acting_as(who.actor):
            overlay_id = set_overlay(hub.engine, target, req.overlay, author[:128], req.comment)
    except AgentError as exc:
        raise HTTPException(422, str(exc)) from None
    hub.desired.changed({target})
    return IdResult(id=overlay_id)


@router.get("/api/v1/config", responses=errors(401, 403))
def get_config(hub: HubDep, who: Admin) -> dict[str, Any]:
    """The overlay held per target."""
    with Session(hub.engine) as s:
        return current_overlays(s)

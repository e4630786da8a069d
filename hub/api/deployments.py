"""Deployments: rollouts of a published version to a gateway or group."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy import desc, select
from sqlalchemy.orm import Session

from agent.errors import AgentError
from hub.api.auth import Admin
from hub.api.bodies import BoundedRoute
from hub.api.deps import HubDep
from hub.api.schemas import DeployRequest, IdResult, errors
from hub.rollouts import RolloutPolicy, deploy
from hub.storage import Deployment, acting_as

router = APIRouter(route_class=BoundedRoute, tags=["deployments"])


@router.post("/api/v1/deployments", status_code=201, responses=errors(400, 401, 403, 413, 422))
def create_deployment(req: DeployRequest, hub: HubDep, who: Admin) -> IdResult:
    """Deploy a published version to a gateway or group: immediate, canary or shadow."""
    policy = RolloutPolicy(req.canary_size, req.watch_s, req.min_labels, req.margin)
    try:
        with acting_as(who.actor):
            dep_id = deploy(hub.engine, req.model, req.version, req.to, req.strategy, policy)
    except AgentError as exc:
        raise HTTPException(422, str(exc)) from None
    with Session(hub.engine) as s:
        dep = s.get(Deployment, dep_id)
        hub.desired.changed({dep.target} if dep else None)
    return IdResult(id=dep_id)


@router.get("/api/v1/deployments", responses=errors(401, 403))
def deployments(hub: HubDep, who: Admin) -> list[dict[str, Any]]:
    """The newest 500 deployments with their rollout state and the reason of each decision."""
    with Session(hub.engine) as s:
        return [{"id": d.id, "target": d.target, "model": d.model, "version": d.version,
                 "strategy": d.strategy, "status": d.status, "canary": d.canary,
                 "created": d.created, "decided": d.decided, "reason": d.reason}
                for d in s.scalars(select(Deployment).order_by(desc(Deployment.id)).limit(500))]

"""Status reports: a gateway's current state, per model; canary and shadow rollouts are judged
from them."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from hub.api.auth import OwnGateway
from hub.api.bodies import BoundedRoute
from hub.api.deps import GatewayId, HubDep
from hub.api.schemas import StatusReport, StoredResult, errors
from hub.rollouts import store_report

router = APIRouter(route_class=BoundedRoute, tags=["gateways"])


@router.post("/api/v1/gateways/{gateway_id}/status", responses=errors(400, 401, 403, 404, 413, 422))
async def status(gateway_id: GatewayId, report: StatusReport, hub: HubDep, who: OwnGateway) -> StoredResult:
    """The gateway's current state (JSON, at most max_json_bytes)."""
    body = report.model_dump(mode="json")
    if body.get("models") is None:  # a one-model agent's report, kept as it sent it
        body.pop("models", None)
    named = await asyncio.to_thread(store_report, hub.engine, gateway_id, body)
    if named != hub.desired.snapshot.reported.get(gateway_id):
        # the model it runs picks the top level of its desired state (for a one-model agent)
        await asyncio.to_thread(hub.desired.changed, {gateway_id})
    return StoredResult(stored=gateway_id)

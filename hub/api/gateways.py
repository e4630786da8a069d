"""The fleet (admin) and each gateway's desired state (the gateway itself)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response

from hub.api.auth import Admin, OwnGateway
from hub.api.bodies import BoundedRoute
from hub.api.deps import GatewayId, HubDep, hub_of
from hub.api.schemas import errors
from hub.storage import list_gateways

router = APIRouter(route_class=BoundedRoute, tags=["gateways"])


@router.get("/api/v1/gateways", responses=errors(401, 403))
def gateways(hub: HubDep, who: Admin) -> list[dict[str, Any]]:
    """The fleet: every gateway with its group, last contact, latest status report and the state
    of its audit chain (ok, pending a resend, or broken with the reason)."""
    return list_gateways(hub.engine)


@router.get("/api/v1/gateways/{gateway_id}/desired",
            responses={304: {"description": "Unchanged since the ETag sent in If-None-Match"},
                       **errors(401, 403, 404, 422)})
async def desired(gateway_id: GatewayId, request: Request, response: Response,
                  who: OwnGateway) -> Any:
    """The model version (and shadow candidate) this gateway should run. Send If-None-Match
    with the last ETag: an unchanged state is an empty 304."""
    # the hub not through HubDep: one dependency fewer for FastAPI to solve on the most frequent
    # request (some 15-25 us each). OwnGateway stays a dependency: FastAPI solves it before it
    # validates the path, so a request without a valid token is a 401 whatever its gateway id
    hub = hub_of(request)
    if not hub.desired.knows(gateway_id):  # registered since the last refresh
        await asyncio.to_thread(hub.desired.changed, {gateway_id})
    doc, etag = hub.desired.get(gateway_id)
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return doc

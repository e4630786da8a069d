"""Bundle archives by manifest sha256, with HTTP Range for resumed downloads."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from hub.api.auth import Caller
from hub.api.bodies import BoundedRoute
from hub.api.deps import HubDep, Sha256
from hub.api.schemas import errors

router = APIRouter(route_class=BoundedRoute, tags=["models"])


@router.get("/api/v1/bundles/{sha256}", response_class=FileResponse,
            responses={200: {"content": {"application/x-tar": {}}, "description": "The archive"},
                       206: {"content": {"application/x-tar": {}}, "description": "A byte range of it"},
                       **errors(401, 403, 404, 422)})
async def bundle(sha256: Sha256, hub: HubDep, who: Caller) -> FileResponse:
    """A gateway may fetch only the versions deployed to it (as active model or shadow)."""
    path = hub.bundles / f"{sha256}.tar"
    if not path.is_file():
        raise HTTPException(404, "no such bundle")
    if who.role != "admin":
        doc, _ = hub.desired.get(str(who.gateway_id))
        allowed = {(doc.get(k) or {}).get("sha256") for k in ("model", "shadow")}
        if sha256 not in allowed:
            raise HTTPException(403, "this bundle is not deployed to this gateway")
    return FileResponse(path, media_type="application/x-tar")

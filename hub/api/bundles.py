"""Bundle archives by manifest sha256, with HTTP Range for resumed downloads.

Served from this machine's DATA directory when the archive is there, else streamed from the
database a chunk at a time (published through another hub machine: hub.fleet.artifacts)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy.engine import Engine

from hub.api.auth import Caller
from hub.api.bodies import BoundedRoute
from hub.api.deps import HubDep, Sha256
from hub.api.schemas import errors
from hub.fleet import artifacts

router = APIRouter(route_class=BoundedRoute, tags=["models"])

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.get("/api/v1/bundles/{sha256}", response_class=FileResponse,
            responses={200: {"content": {"application/x-tar": {}}, "description": "The archive"},
                       206: {"content": {"application/x-tar": {}}, "description": "A byte range of it"},
                       **errors(401, 403, 404, 422),
                       416: {"description": "The range is beyond the archive"}})
async def bundle(sha256: Sha256, hub: HubDep, who: Caller, request: Request) -> Response:
    """A gateway may fetch only the versions deployed to it (as active model or shadow)."""
    path = hub.bundles / f"{sha256}.tar"
    stored = None if path.is_file() else await asyncio.to_thread(
        artifacts.info, hub.engine, artifacts.bundle_key(sha256))
    if not path.is_file() and stored is None:
        raise HTTPException(404, "no such bundle")
    if who.role != "admin":
        doc, _ = hub.desired.get(str(who.gateway_id))
        # every model's entry, not only the legacy top level (a gateway runs several models)
        parts = [doc, *(doc.get("models") or {}).values()]
        allowed = {(part.get(k) or {}).get("sha256") for part in parts for k in ("model", "shadow")}
        if sha256 not in allowed:
            raise HTTPException(403, "this bundle is not deployed to this gateway")
    if stored is None:
        return FileResponse(path, media_type="application/x-tar")
    return _streamed(hub.engine, artifacts.bundle_key(sha256), stored[0], request.headers.get("range"))


def _streamed(engine: Engine, key: str, size: int, header: str | None) -> Response:
    first, last, status = 0, size - 1, 200
    span = _RANGE.match(header.strip()) if header else None
    if span and (span.group(1) or span.group(2)):
        if span.group(1):
            first = int(span.group(1))
            last = min(int(span.group(2)), size - 1) if span.group(2) else size - 1
        else:  # the last N bytes
            first = max(size - int(span.group(2)), 0)
        if first >= size or first > last:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first + 1)}
    if status == 206:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"

    async def body() -> AsyncIterator[bytes]:
        chunks = artifacts.stream(engine, key, first, last)
        while True:
            block = await asyncio.to_thread(next, chunks, None)
            if block is None:
                return
            yield block

    return StreamingResponse(body(), status_code=status, media_type="application/x-tar", headers=headers)

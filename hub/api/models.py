"""The model registry: published versions, publishing a bundle archive, rolling a model back."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from agent.errors import AgentError
from hub.api.auth import Admin
from hub.api.bodies import BoundedRoute, read_stream
from hub.api.deps import HubDep, ModelName
from hub.api.schemas import Published, RollbackRequest, TargetsResult, errors
from hub.limits import Inflater
from hub.registry import list_versions, publish
from hub.rollouts import rollback
from hub.storage import acting_as

router = APIRouter(route_class=BoundedRoute, tags=["models"])

# any Content-Type is read the same (application/x-tar, application/gzip, ...)
_TAR = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("/api/v1/models", responses=errors(401, 403, 422))
def models(hub: HubDep, who: Admin,
           name: Annotated[str | None, Query(max_length=128)] = None) -> list[dict[str, Any]]:
    """Published versions with their manifests (lineage, metrics, inputs)."""
    return list_versions(hub.engine, name)


@router.post("/api/v1/models", status_code=201, openapi_extra=_TAR,
             responses=errors(400, 401, 403, 413, 422))
async def upload(request: Request, hub: HubDep, who: Admin) -> Published:
    """Publish a bundle archive (tar or tar.gz): its size, file count and unpacked size are
    checked before anything is extracted, every file must be listed in the manifest, hashes and
    signature must verify against the hub's trusted keys, and the model must load with its
    runtime and pass its self-test."""
    tmp = Path(tempfile.mkdtemp(prefix="upload-"))
    try:
        archive = tmp / "bundle.tar"
        limits = hub.limits
        await read_stream(request, Inflater(None, limits.upload_max_bytes, limits),
                          limits.upload_max_bytes, sink=archive)

        def run() -> Any:
            with acting_as(who.actor):
                return publish(hub.engine, hub.data_dir, archive, hub.trusted_keys(), limits)
        b = await asyncio.to_thread(run)
    except AgentError as exc:
        raise HTTPException(422, str(exc).replace(str(tmp), "upload")) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Published(name=b.manifest.name, version=b.manifest.version, sha256=b.sha256)


@router.post("/api/v1/models/{model}/rollback", responses=errors(400, 401, 403, 413, 422))
def rollback_model(model: ModelName, req: RollbackRequest, hub: HubDep, who: Admin) -> TargetsResult:
    """Stop rollouts of the model in flight and deploy an earlier version immediately."""
    try:
        with acting_as(who.actor):
            targets = rollback(hub.engine, model, req.to_version, req.target)
    except AgentError as exc:
        raise HTTPException(422, str(exc)) from None
    hub.desired.changed(targets)
    return TargetsResult(targets=targets)

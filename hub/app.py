"""The hub's HTTP API (FastAPI). Gateways authenticate with their own bearer token and can only
read their own desired state and write their own telemetry; admins publish and deploy."""

# no "from __future__ import annotations": FastAPI resolves the dependencies in these closures

import gzip
import hashlib
import json
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import desc, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.db import Deployment, Gateway, ModelVersion, Token, hash_token, insert_telemetry

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 32 << 20


class Caller(BaseModel):
    role: str
    gateway_id: str | None = None


class TelemetryRecord(BaseModel):
    seq: int = Field(ge=1)
    kind: str = Field(min_length=1, max_length=32)
    items: int = Field(ge=0)
    created: float
    payload_hex: str


class TelemetryBatch(BaseModel):
    gateway_id: str
    first_seq: int = Field(ge=1)
    last_seq: int = Field(ge=1)
    records: list[TelemetryRecord] = Field(max_length=100_000)


def create_app(engine: Engine, data_dir: Path) -> FastAPI:
    app = FastAPI(title="factory-edge hub", version="0.1.0",
                  description="Model registry, deployments and telemetry for edge gateways.")
    bundles = data_dir / "bundles"
    bundles.mkdir(parents=True, exist_ok=True)

    def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        with Session(engine) as s:
            token = s.get(Token, hash_token(authorization.removeprefix("Bearer ").strip()))
        if token is None:
            log.warning("rejected an unknown token")  # never log the token itself
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        return Caller(role=token.role, gateway_id=token.gateway_id)

    def gateway_only(gateway_id: str, who: Caller) -> None:
        if who.role != "admin" and who.gateway_id != gateway_id:
            log.warning("gateway %s tried to reach gateway %s's data", who.gateway_id, gateway_id)
            raise HTTPException(403, "a gateway may only use its own resources")

    @app.get("/api/v1/gateways/{gateway_id}/desired")
    def desired(gateway_id: str, request: Request, response: Response,
                who: Annotated[Caller, Depends(caller)]) -> Any:
        """The model version this gateway should run. ETag / If-None-Match: an idle poll is a 304."""
        gateway_only(gateway_id, who)
        doc = desired_state(engine, gateway_id)
        etag = '"' + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        response.headers["ETag"] = etag
        return doc

    @app.get("/api/v1/bundles/{sha256}")
    def bundle(sha256: str, who: Annotated[Caller, Depends(caller)]) -> FileResponse:
        """A bundle archive, content-addressed; supports HTTP Range to resume a broken download."""
        path = bundles / f"{sha256}.tar"
        if len(sha256) != 64 or not path.is_file():
            raise HTTPException(404, "no such bundle")
        return FileResponse(path, media_type="application/x-tar")

    @app.post("/api/v1/gateways/{gateway_id}/telemetry")
    async def telemetry(gateway_id: str, request: Request,
                        who: Annotated[Caller, Depends(caller)]) -> dict[str, int]:
        """A gzip-compressed JSON batch of outbox records with its sequence range; idempotent."""
        gateway_only(gateway_id, who)
        body = await request.body()
        if len(body) > MAX_BATCH_BYTES:
            raise HTTPException(413, f"batch over {MAX_BATCH_BYTES} bytes; send smaller batches")
        try:
            raw = gzip.decompress(body) if request.headers.get("content-encoding") == "gzip" else body
            batch = TelemetryBatch.model_validate_json(raw)
        except (OSError, EOFError, ValidationError) as exc:
            raise HTTPException(422, f"not a telemetry batch: {str(exc)[:200]}") from None
        if batch.gateway_id != gateway_id:
            raise HTTPException(422, "gateway_id in the body differs from the URL")
        seqs = [r.seq for r in batch.records]
        if seqs and (min(seqs) < batch.first_seq or max(seqs) > batch.last_seq):
            raise HTTPException(422, "records outside the declared sequence range")
        rows = [{"seq": r.seq, "kind": r.kind, "items": r.items, "created": r.created,
                 "payload": bytes.fromhex(r.payload_hex)} for r in batch.records]
        stored = insert_telemetry(engine, gateway_id, rows)
        return {"received": len(rows), "stored": stored, "duplicates": len(rows) - stored}

    return app


def desired_state(engine: Engine, gateway_id: str) -> dict[str, Any]:
    with Session(engine) as s:
        gw = s.get(Gateway, gateway_id)
        targets = [gateway_id] + ([f"group:{gw.group}"] if gw and gw.group else [])
        dep = s.scalars(select(Deployment).where(Deployment.target.in_(targets))
                        .order_by(desc(Deployment.id)).limit(1)).first()
        if dep is None:
            return {"gateway_id": gateway_id, "model": None}
        mv = s.scalars(select(ModelVersion).where(ModelVersion.name == dep.model,
                                                  ModelVersion.version == dep.version)).first()
        if mv is None:
            return {"gateway_id": gateway_id, "model": None}
        return {"gateway_id": gateway_id, "strategy": dep.strategy, "deployed": dep.created,
                "model": {"name": mv.name, "version": mv.version, "sha256": mv.sha256,
                          "url": f"/api/v1/bundles/{mv.sha256}"}}


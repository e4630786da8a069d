"""The hub's HTTP API (FastAPI). Gateways authenticate with their own bearer token and can only
read their own desired state, download the bundles deployed to them, and write their own
telemetry and status; admin tokens publish, deploy and roll back. OpenAPI schema at /docs."""

# no "from __future__ import annotations": FastAPI resolves the dependencies in these closures

import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import desc, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.errors import AgentError
from hub.audit import export, seal
from hub.db import Deployment, GatewayMetric, HistoryEntry, Token, hash_token, insert_telemetry, list_gateways
from hub.ingest import ingest
from hub.modelcard import card_data, card_html, card_markdown
from hub.overlays import current_overlays, set_overlay
from hub.registry import list_versions, publish, trusted_keys
from hub.retrain import evaluate_triggers
from hub.rollouts import STRATEGIES, RolloutPolicy, deploy, evaluate, load_snapshot, rollback, store_report

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 32 << 20
MAX_REPORT_BYTES = 1 << 20
MAX_BUNDLE_BYTES = 512 << 20
TOKEN_CACHE_S = 30.0  # a token revoked by another process stops working within this time
TRIGGERS_S = 2.0  # how often retrain triggers are judged
SNAPSHOT_S = 2.0  # a change made by another process (the CLI, another worker) is seen within this


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


class StatusReport(BaseModel):
    """A gateway's state: versions, comparison figures, alarms, backlog. Unknown fields are kept
    so that newer agents can report more to an older hub."""
    model_config = ConfigDict(extra="allow")
    agent_version: str | None = None
    active: dict[str, Any] | None = None
    shadow: dict[str, Any] | None = None
    watch: dict[str, Any] | None = None
    rejected: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    alarms: dict[str, Any] | list[Any] | None = None
    outbox_depth: int | None = None
    last_error: str | None = None


class DeployRequest(BaseModel):
    model: str
    version: str
    to: str = Field(description="A gateway id or group:NAME.")
    strategy: str = Field("immediate", description=" | ".join(STRATEGIES))
    canary_size: int = Field(1, ge=1)
    watch_s: float = Field(600.0, ge=0)
    min_labels: int = Field(50, ge=0)
    margin: float = Field(0.0, ge=0)


class OverlayRequest(BaseModel):
    overlay: dict[str, Any] = Field(description="Agent config sections; {} clears the overlay.")
    author: str = Field("api", max_length=128)
    comment: str | None = Field(None, max_length=1000)


class RollbackRequest(BaseModel):
    to_version: str
    target: str | None = None


class _Cache:
    """What keeps an idle poll off the database: the fleet snapshot, the desired state and ETag
    per gateway made from it, and known tokens."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tokens: dict[str, tuple[float, Caller | None]] = {}
        self.snapshot = load_snapshot(engine)
        self.desired: dict[str, tuple[dict[str, Any], str]] = {}

    def refresh(self) -> None:
        snapshot = load_snapshot(self.engine)
        self.snapshot, self.desired = snapshot, {}  # two assignments: readers see old or new

    def clear_desired(self) -> None:
        self.refresh()

    def forget_token(self, key: str) -> None:
        self.tokens.pop(key, None)


def create_app(engine: Engine, data_dir: Path, keys: list[Path] | None = None,
               evaluate_interval_s: float = 1.0, token_cache_s: float = TOKEN_CACHE_S) -> FastAPI:
    bundles = data_dir / "bundles"
    bundles.mkdir(parents=True, exist_ok=True)
    cache = _Cache(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(evaluate_loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def evaluate_loop() -> None:
        last_refresh = last_triggers = time.monotonic()
        while True:
            await asyncio.sleep(evaluate_interval_s)
            try:
                decisions = await asyncio.to_thread(evaluate, engine)
                for d in decisions:
                    log.info("rollout decision: %s", d)
                if time.monotonic() - last_triggers >= TRIGGERS_S:
                    last_triggers = time.monotonic()
                    for started in await asyncio.to_thread(evaluate_triggers, engine, data_dir):
                        log.info("retrain started: %s", started)
                await asyncio.to_thread(seal, engine)
                if decisions or time.monotonic() - last_refresh >= SNAPSHOT_S:
                    await asyncio.to_thread(cache.refresh)
                    last_refresh = time.monotonic()
            except Exception:  # the database may be away for a moment: try again next round
                log.exception("rollout evaluation failed")

    app = FastAPI(title="factory-edge hub", version="0.2.0", lifespan=lifespan,
                  description="Model registry, rollouts, status and telemetry for edge gateways.")

    def evaluate_now() -> list[str]:
        decisions = evaluate(engine)
        cache.clear_desired()
        return decisions

    app.state.evaluate_now = evaluate_now  # tests judge rollouts without waiting for the loop

    def lookup_token(key: str) -> Caller | None:
        with Session(engine) as s:
            token = s.get(Token, key)
            return Caller(role=token.role, gateway_id=token.gateway_id) if token else None

    async def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        key = hash_token(authorization.removeprefix("Bearer ").strip())
        now = time.monotonic()
        hit = cache.tokens.get(key)
        if hit is None or hit[0] < now:
            who = await asyncio.to_thread(lookup_token, key)
            if len(cache.tokens) > 100_000:  # bounded: unknown tokens must not fill memory
                cache.tokens.clear()
            # unknown tokens are remembered briefly only: a new gateway's token works at once
            hit = cache.tokens[key] = (now + (token_cache_s if who else 1.0), who)
        if hit[1] is None:
            log.warning("rejected an unknown token")  # never log the token itself
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        return hit[1]

    def gateway_only(gateway_id: str, who: Caller) -> None:
        if who.role != "admin" and who.gateway_id != gateway_id:
            log.warning("gateway %s tried to reach gateway %s's data", who.gateway_id, gateway_id)
            raise HTTPException(403, "a gateway may only use its own resources")

    def admin_only(who: Caller) -> None:
        if who.role != "admin":
            log.warning("gateway %s tried an admin request", who.gateway_id)
            raise HTTPException(403, "this request needs an admin token")

    async def desired_cached(gateway_id: str) -> tuple[dict[str, Any], str]:
        hit = cache.desired.get(gateway_id)
        if hit is None:
            if gateway_id not in cache.snapshot.groups:  # registered since the last refresh
                await asyncio.to_thread(cache.refresh)
            doc = cache.snapshot.desired(gateway_id)
            etag = '"' + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32] + '"'
            hit = cache.desired[gateway_id] = (doc, etag)
        return hit

    Who = Annotated[Caller, Depends(caller)]

    @app.get("/api/v1/gateways/{gateway_id}/desired")
    async def desired(gateway_id: str, request: Request, response: Response, who: Who) -> Any:
        """The model version (and shadow candidate) this gateway should run. Send If-None-Match
        with the last ETag: an unchanged state is an empty 304."""
        gateway_only(gateway_id, who)
        doc, etag = await desired_cached(gateway_id)
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        response.headers["ETag"] = etag
        return doc

    @app.get("/api/v1/bundles/{sha256}")
    async def bundle(sha256: str, who: Who) -> FileResponse:
        """A bundle archive by manifest sha256; HTTP Range resumes a broken download. A gateway
        may fetch only the versions deployed to it."""
        path = bundles / f"{sha256}.tar"
        if len(sha256) != 64 or not path.is_file():
            raise HTTPException(404, "no such bundle")
        if who.role != "admin":
            doc, _ = await desired_cached(str(who.gateway_id))
            allowed = {(doc.get(k) or {}).get("sha256") for k in ("model", "shadow")}
            if sha256 not in allowed:
                raise HTTPException(403, "this bundle is not deployed to this gateway")
        return FileResponse(path, media_type="application/x-tar")

    @app.post("/api/v1/gateways/{gateway_id}/telemetry")
    async def telemetry(gateway_id: str, request: Request, who: Who) -> dict[str, int]:
        """A gzip-compressed JSON batch of outbox records with its sequence range; idempotent:
        a (gateway, seq) already stored is skipped by a unique constraint."""
        gateway_only(gateway_id, who)
        body = await request.body()
        if len(body) > MAX_BATCH_BYTES:
            raise HTTPException(413, f"batch over {MAX_BATCH_BYTES} bytes; send smaller batches")
        try:
            raw = gzip.decompress(body) if request.headers.get("content-encoding") == "gzip" else body
            batch = TelemetryBatch.model_validate_json(raw)
            rows = [{"seq": r.seq, "kind": r.kind, "items": r.items, "created": r.created,
                     "payload": bytes.fromhex(r.payload_hex)} for r in batch.records]
        except (OSError, EOFError, ValueError, ValidationError) as exc:
            raise HTTPException(422, f"not a telemetry batch: {str(exc)[:200]}") from None
        if batch.gateway_id != gateway_id:
            raise HTTPException(422, "gateway_id in the body differs from the URL")
        seqs = [r.seq for r in batch.records]
        if seqs and (min(seqs) < batch.first_seq or max(seqs) > batch.last_seq):
            raise HTTPException(422, "records outside the declared sequence range")
        inserted = await asyncio.to_thread(insert_telemetry, engine, gateway_id, rows)
        await asyncio.to_thread(ingest, engine, gateway_id, rows, inserted)
        stored = len(inserted)
        return {"received": len(rows), "stored": stored, "duplicates": len(rows) - stored}

    @app.post("/api/v1/gateways/{gateway_id}/status")
    async def status(gateway_id: str, request: Request, who: Who) -> dict[str, str]:
        """The gateway's current state; canary and shadow rollouts are judged from these."""
        gateway_only(gateway_id, who)
        body = await request.body()
        if len(body) > MAX_REPORT_BYTES:
            raise HTTPException(413, f"status report over {MAX_REPORT_BYTES} bytes")
        try:
            report = StatusReport.model_validate_json(body)
        except ValidationError as exc:
            raise HTTPException(422, f"not a status report: {str(exc)[:300]}") from None
        await asyncio.to_thread(store_report, engine, gateway_id, report.model_dump(mode="json"))
        return {"stored": gateway_id}

    # -- admin ----------------------------------------------------------------------------------
    @app.get("/api/v1/gateways")
    def gateways(who: Who) -> list[dict[str, Any]]:
        """The fleet: every gateway with its group, last contact and latest status report."""
        admin_only(who)
        return list_gateways(engine)

    @app.get("/api/v1/models")
    def models(who: Who, name: str | None = None) -> list[dict[str, Any]]:
        """Published versions with their manifests (lineage, metrics, inputs)."""
        admin_only(who)
        return list_versions(engine, name)

    @app.post("/api/v1/models", status_code=201)
    async def upload(request: Request, who: Who) -> dict[str, str]:
        """Publish a bundle archive (tar): verified against the hub's trusted keys first."""
        admin_only(who)
        body = await request.body()
        if len(body) > MAX_BUNDLE_BYTES:
            raise HTTPException(413, f"bundle over {MAX_BUNDLE_BYTES} bytes")
        tmp = Path(tempfile.mkdtemp(prefix="upload-"))
        try:
            (tmp / "bundle.tar").write_bytes(body)
            b = await asyncio.to_thread(publish, engine, data_dir, tmp / "bundle.tar",
                                        trusted_keys(data_dir, keys))
        except AgentError as exc:
            raise HTTPException(422, str(exc).replace(str(tmp), "upload")) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return {"name": b.manifest.name, "version": b.manifest.version, "sha256": b.sha256}

    @app.post("/api/v1/deployments", status_code=201)
    def create_deployment(req: DeployRequest, who: Who) -> dict[str, Any]:
        """Deploy a published version to a gateway or group: immediate, canary or shadow."""
        admin_only(who)
        policy = RolloutPolicy(req.canary_size, req.watch_s, req.min_labels, req.margin)
        try:
            dep_id = deploy(engine, req.model, req.version, req.to, req.strategy, policy)
        except AgentError as exc:
            raise HTTPException(422, str(exc)) from None
        cache.clear_desired()
        return {"id": dep_id}

    @app.get("/api/v1/deployments")
    def deployments(who: Who) -> list[dict[str, Any]]:
        admin_only(who)
        with Session(engine) as s:
            return [{"id": d.id, "target": d.target, "model": d.model, "version": d.version,
                     "strategy": d.strategy, "status": d.status, "canary": d.canary,
                     "created": d.created, "decided": d.decided, "reason": d.reason}
                    for d in s.scalars(select(Deployment).order_by(desc(Deployment.id)).limit(500))]

    @app.post("/api/v1/models/{model}/rollback")
    def rollback_model(model: str, req: RollbackRequest, who: Who) -> dict[str, Any]:
        """Stop rollouts of the model in flight and deploy an earlier version immediately."""
        admin_only(who)
        try:
            targets = rollback(engine, model, req.to_version, req.target)
        except AgentError as exc:
            raise HTTPException(422, str(exc)) from None
        cache.clear_desired()
        return {"targets": targets}

    @app.put("/api/v1/config/{target}")
    def put_config(target: str, req: OverlayRequest, who: Who) -> dict[str, Any]:
        """Hold config settings for a gateway or group:NAME; the gateways take them with their
        desired state, validate them against their own file and report the outcome."""
        admin_only(who)
        try:
            overlay_id = set_overlay(engine, target, req.overlay, req.author, req.comment)
        except AgentError as exc:
            raise HTTPException(422, str(exc)) from None
        cache.clear_desired()
        return {"id": overlay_id}

    @app.get("/api/v1/config")
    def get_config(who: Who) -> dict[str, Any]:
        admin_only(who)
        with Session(engine) as s:
            return current_overlays(s)

    @app.get("/dashboard", include_in_schema=False)
    def dashboard() -> FileResponse:
        """The fleet, model health over time, versions with their cards, the audit trail.
        A static page: it asks for an admin token and reads the API with it."""
        return FileResponse(Path(__file__).parent / "static" / "dashboard.html", media_type="text/html")

    @app.get("/api/v1/metrics")
    def metrics(who: Who, model: str | None = None, since: float = 0.0) -> list[dict[str, Any]]:
        """Model health over time as the gateways reported it (accuracy, largest PSI, health)."""
        admin_only(who)
        with Session(engine) as s:
            q = select(GatewayMetric).where(GatewayMetric.at >= since).order_by(GatewayMetric.at)
            if model:
                q = q.where(GatewayMetric.model == model)
            return [{"gateway_id": m.gateway_id, "at": m.at, "model": m.model, "version": m.version,
                     "accuracy": m.accuracy, "drift_score": m.drift_score, "health": m.health,
                     **(m.figures or {})}
                    for m in s.scalars(q.limit(20_000))]

    @app.get("/api/v1/models/{model}/{version}/card")
    def model_card(model: str, version: str, who: Who, format: str = "md") -> Response:
        """The version's model card, Markdown (format=md) or a standalone page (format=html)."""
        admin_only(who)
        try:
            data = card_data(engine, model, version)
        except AgentError as exc:
            raise HTTPException(404, str(exc)) from None
        if format == "html":
            return Response(card_html(data), media_type="text/html")
        return Response(card_markdown(data), media_type="text/markdown")

    @app.get("/api/v1/audit")
    def audit_trail(who: Who, since: float = 0.0) -> list[dict[str, Any]]:
        """The hub's hash-chained audit trail."""
        admin_only(who)
        return export(engine, since)

    @app.get("/api/v1/history")
    def history(who: Who, model: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Version history: published, deployed, activated, promoted, rejected, rolled back."""
        admin_only(who)
        with Session(engine) as s:
            q = select(HistoryEntry).order_by(desc(HistoryEntry.id)).limit(min(limit, 5000))
            if model:
                q = q.where(HistoryEntry.model == model)
            return [{"at": h.at, "model": h.model, "version": h.version, "event": h.event,
                     "gateway_id": h.gateway_id, "detail": h.detail} for h in s.scalars(q)]

    return app

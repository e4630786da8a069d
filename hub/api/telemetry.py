"""Telemetry: a gzip-compressed JSON batch of outbox records with its sequence range; stored
once per (gateway, seq) and ingested in the same transaction (hub.storage.telemetry)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from hub.api.auth import OwnGateway
from hub.api.bodies import BoundedRoute, read_stream, refuse
from hub.api.deps import GatewayId, HubDep
from hub.api.schemas import TelemetryBatch, TelemetryResult, errors
from hub.fleet.metrics import INGESTED
from hub.limits import HubLimits, Inflater, LimitError
from hub.storage import store_batch

router = APIRouter(route_class=BoundedRoute, tags=["gateways"])

_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/TelemetryBatch"}}}}}


def decode_batch(raw: bytes | bytearray, gateway_id: str, limits: HubLimits) -> list[dict[str, Any]]:
    """The decompressed body -> rows to store. Raises LimitError naming the field for anything
    that is not a batch of this gateway's records."""
    try:
        batch = TelemetryBatch.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise LimitError(f"not a telemetry batch: {where}: {err['msg']}", 422, f"body.{where}") from None
    if batch.gateway_id != gateway_id:
        raise LimitError("gateway_id in the body differs from the URL", 422, "body.gateway_id")
    if batch.first_seq > batch.last_seq:
        raise LimitError("first_seq is after last_seq", 422, "body.first_seq")
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for i, r in enumerate(batch.records):
        if not batch.first_seq <= r.seq <= batch.last_seq:
            raise LimitError(f"records[{i}].seq {r.seq} is outside the declared sequence range", 422,
                             f"body.records.{i}.seq")
        if r.seq in seen:
            raise LimitError(f"records[{i}].seq {r.seq} appears twice", 422, f"body.records.{i}.seq")
        if r.created > limits.max_timestamp:
            raise LimitError(f"records[{i}].created is after {limits.max_timestamp:g}", 422,
                             f"body.records.{i}.created")
        seen.add(r.seq)
        rows.append({"seq": r.seq, "kind": r.kind, "items": r.items, "created": r.created,
                     "payload": bytes.fromhex(r.payload_hex)})
    return rows


@router.post("/api/v1/gateways/{gateway_id}/telemetry", openapi_extra=_BODY,
             responses=errors(400, 401, 403, 404, 413, 415, 422))
async def telemetry(gateway_id: GatewayId, request: Request, hub: HubDep, who: OwnGateway) -> TelemetryResult:
    """Send Content-Encoding: gzip. Idempotent: a (gateway, seq) already stored is skipped (and
    its ingest completed if an older hub missed it)."""
    limits = hub.limits
    try:
        inflater = Inflater(request.headers.get("content-encoding"), limits.max_inflated_bytes, limits)
    except LimitError as exc:
        raise refuse(exc) from None
    raw = await read_stream(request, inflater, limits.max_body_bytes)
    try:
        rows = decode_batch(raw, gateway_id, limits)
    except LimitError as exc:
        raise refuse(exc) from None
    del raw, inflater  # the inflated body is not needed past here
    result = await asyncio.to_thread(store_batch, hub.engine, gateway_id, rows, limits)
    INGESTED.inc(result.stored)
    return TelemetryResult(received=result.received, stored=result.stored, duplicates=result.duplicates)

"""Upload the outbox to the hub: peek a batch, gzip it, post it with its sequence range, and
acknowledge only after a 2xx. At-least-once on the wire; the hub stores each (gateway, seq)
once, so the effect is exactly-once. While the hub is unreachable: jittered backoff, and the
outbox keeps everything (within its disk budget).

A batch the hub refuses as malformed (400, 413, 422) is not retried as it is for ever: the
uploader halves the batch until it finds the record the hub refuses, moves that one aside in
the outbox (``refused``, with the hub's reason, counted) and goes on with the rest."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging

import httpx

from agent.aio.backoff import Backoff
from agent.aio.links import SourceStatus
from agent.config import HubConfig
from agent.hublink.client import hub_client
from agent.store.outbox import AsyncOutbox, StoredRecord

log = logging.getLogger(__name__)

# answers that say "this content is wrong", not "try again later"
CONTENT_REFUSALS = frozenset({400, 413, 422})


def batch_body(gateway_id: str, records: list[StoredRecord]) -> bytes:
    doc = {"gateway_id": gateway_id, "first_seq": records[0].seq, "last_seq": records[-1].seq,
           "records": [{"seq": r.seq, "kind": r.kind, "items": r.items, "created": r.created,
                        "payload_hex": r.payload.hex()} for r in records]}
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), 5)


class Uploader:
    def __init__(self, config: HubConfig, gateway_id: str, outbox: AsyncOutbox,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.gateway_id = gateway_id
        self.outbox = outbox
        self.status = SourceStatus("hub-upload", "hub", role="hub")
        self._transport = transport
        self.uploaded_records = 0
        self.uploaded_batches = 0
        self.refused_records = 0
        self._limit = config.upload_batch  # shrinks while a refused record is being isolated

    async def run(self) -> None:
        backoff = Backoff(self.config.reconnect)
        url = f"/api/v1/gateways/{self.gateway_id}/telemetry"
        async with hub_client(self.config, self._transport) as client:
            while True:
                records = await self.outbox.peek(self._limit, 4 << 20)
                if not records:
                    await asyncio.sleep(self.config.upload_interval_s)
                    continue
                try:
                    response = await client.post(url, content=batch_body(self.gateway_id, records),
                                                 headers={"Content-Encoding": "gzip",
                                                          "Content-Type": "application/json"})
                except httpx.HTTPError as exc:
                    self._failed(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(backoff.next_delay())
                    continue
                if response.is_success:
                    await self.outbox.ack([r.seq for r in records])
                    self.uploaded_records += len(records)
                    self.uploaded_batches += 1
                    self.status.mark_connected()
                    backoff.reset()
                    self._limit = min(self.config.upload_batch, self._limit * 2)
                    continue  # drain the backlog as fast as the hub takes it
                if response.status_code in CONTENT_REFUSALS:
                    self.status.mark_connected()  # the hub is there; it dislikes this content
                    await self._isolate(records, response)
                    continue
                self._failed(f"hub answered {response.status_code}: {response.text[:200]}")
                if response.status_code in (401, 403):
                    log.error("the hub refuses this gateway's token; check hub.token")
                await asyncio.sleep(backoff.next_delay())

    async def _isolate(self, records: list[StoredRecord], response: httpx.Response) -> None:
        """Halve the batch until one record is left; that one is refused for what it is."""
        if len(records) > 1:
            self._limit = max(1, len(records) // 2)
            return
        reason = f"hub answered {response.status_code}: {response.text[:300]}"
        moved = await self.outbox.refuse([records[0].seq], reason)
        self.refused_records += moved
        self._limit = 1  # grows back by doubling with each accepted batch
        log.error("the hub refused outbox record %d (%s) as malformed: %s; it is kept aside in "
                  "the outbox's 'refused' table and the upload goes on", records[0].seq,
                  records[0].kind, reason)

    def _failed(self, why: str) -> None:
        if self.status.mark_failed(why):
            log.warning("upload to the hub failed (%s); the outbox keeps the records", why)

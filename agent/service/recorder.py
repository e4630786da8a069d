"""The outbox recorder, the pipeline's last sink: everything the stages hand it (readings,
predictions, shadow predictions, lifecycle and incident events, labels, audit entries, the
training samples of every model) waits in one ``Pending`` and goes to the outbox on the flush
schedule, as records of one kind each. A flush hands the whole Pending over and starts a fresh
one, so nothing arriving during a write is lost or written twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.inference.batches import PredictionBatch
from agent.store.audit import AuditLog
from agent.store.outbox import AsyncOutbox, NewRecord
from agent.store.recording import Pending, outbox_records
from agent.types import Reading

log = logging.getLogger(__name__)


def empty() -> Pending:
    return Pending([], [], [], [], [], [], [], [])


@dataclass
class RecorderSnapshot:
    records_written: int
    readings_recorded: int
    readings_dropped: int
    pending_readings: int
    writes_in_flight: int


class Recorder:
    def __init__(self, audit: AuditLog, reading_limit: int, keep_readings: bool) -> None:
        self.audit = audit
        self.reading_limit = reading_limit  # readings waiting for a slow disk, oldest dropped
        self.keep_readings = keep_readings
        self.pending = empty()
        self.outbox: AsyncOutbox | None = None
        # training samples are taken from each model's sampler at flush time
        self.training_sources: list[Callable[[], list[dict[str, Any]]]] = []
        self.records_written = 0
        self.readings_recorded = 0
        self.readings_dropped = 0
        self._writes: set[asyncio.Future[None]] = set()

    # -- what the stages hand over (event loop, never blocking) ------------------------------
    def reading(self, r: Reading) -> None:
        if not self.keep_readings:
            return
        readings = self.pending.readings
        readings.append(r)
        if len(readings) > 2 * self.reading_limit:
            # the outbox is not keeping up (a disk stall): bounded, counted, oldest first
            excess = len(readings) - self.reading_limit
            del readings[:excess]
            self.readings_dropped += excess

    def predictions(self, batch: PredictionBatch) -> None:
        self.pending.predictions.append(batch)

    def shadow(self, batch: PredictionBatch) -> None:
        self.pending.shadow.append(batch)

    def lifecycle(self, doc: dict[str, Any]) -> None:
        self.pending.lifecycle.append(doc)

    def label(self, doc: dict[str, Any]) -> None:
        self.pending.labels.append(doc)

    def event(self, doc: dict[str, Any]) -> None:
        self.pending.events.append(doc)

    def record_audit(self, actor: str, action: str, subject: str, why: str,
                     detail: dict[str, Any] | None = None) -> None:
        """Into the hash-chained log on disk, and through the outbox to the hub."""
        try:
            self.pending.audit.append(self.audit.append(actor, action, subject, why, detail))
        except OSError as exc:  # a full or read-only disk must not stop the line
            log.error("audit entry not written (%s): %s %s", exc, action, subject)

    # -- flushing ------------------------------------------------------------------------------
    async def flush(self) -> None:
        pending, self.pending = self.pending, empty()
        for take in self.training_sources:
            pending.training_samples.extend(take())
        records = outbox_records(pending)
        if records and self.outbox is not None:
            # shielded: the records are out of the pending lists now; a shutdown that cancels
            # the flusher mid-write must not cancel the write queued on the outbox thread
            write = asyncio.ensure_future(self._append(records, len(pending.readings)))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
            await asyncio.shield(write)

    async def _append(self, records: list[NewRecord], readings: int) -> None:
        assert self.outbox is not None
        await self.outbox.append(records)
        self.records_written += len(records)
        self.readings_recorded += readings

    async def finish(self) -> None:
        """A write the cancelled flusher started: finish it before the outbox closes."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=30)

    def snapshot(self) -> RecorderSnapshot:
        return RecorderSnapshot(self.records_written, self.readings_recorded, self.readings_dropped,
                                len(self.pending.readings), len(self._writes))

"""What the flusher writes to the outbox: everything gathered since the last flush, as records
of one kind each, in sizes that keep upload batches to a few hundred kB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.inference.batches import PredictionBatch, encode_predictions
from agent.store.codec import encode_json, encode_readings
from agent.store.outbox import NewRecord, Priority
from agent.types import Reading

RECORD_ROWS = 20_000  # rows per outbox record


@dataclass
class Pending:
    readings: list[Reading]
    predictions: list[PredictionBatch]
    shadow: list[PredictionBatch]
    lifecycle: list[dict[str, Any]]
    training_samples: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    events: list[dict[str, Any]]


def outbox_records(p: Pending) -> list[NewRecord]:
    records: list[NewRecord] = []
    for start in range(0, len(p.readings), RECORD_ROWS):
        part = p.readings[start:start + RECORD_ROWS]
        records.append(NewRecord("readings", Priority.READINGS, encode_readings(part), len(part)))
    for joined in PredictionBatch.concat_by_version(p.predictions):
        for start in range(0, len(joined), RECORD_ROWS):
            chunk = joined.slice(start, start + RECORD_ROWS) if len(joined) > RECORD_ROWS else joined
            records.append(NewRecord("predictions", Priority.PREDICTIONS, encode_predictions(chunk),
                                     len(chunk)))
    for b in PredictionBatch.concat_by_version(p.shadow):  # recorded, never published
        records.append(NewRecord("shadow_predictions", Priority.PREDICTIONS, encode_predictions(b), len(b)))
    for kind, docs, priority in (("lifecycle", p.lifecycle, Priority.EVENTS),
                                 ("training_samples", p.training_samples, Priority.LABELS),
                                 ("audit", p.audit, Priority.EVENTS),
                                 ("labels", p.labels, Priority.LABELS),
                                 ("events", p.events, Priority.EVENTS)):
        if docs:
            mark = max((d.get("seq", 0) for d in docs if isinstance(d.get("seq"), int)), default=0) if (
                kind == "audit") else 0
            records.append(NewRecord(kind, priority, encode_json(docs), len(docs), mark))
    return records

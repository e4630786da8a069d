"""Telemetry from the gateways: stored once per (gateway, seq) and ingested (training samples,
gateway audit entries) in the same transaction, so a crash leaves a record with everything
derived from it, or neither. A resend of a record an older hub stored without finishing its
ingest (``ingested`` not true) completes it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.faults import pause_point
from hub.limits import HubLimits
from hub.storage.ingest import INGESTED_KINDS, ingest
from hub.storage.tables import Gateway, Telemetry

INSERT_CHUNK = 1000


@dataclass(frozen=True)
class Stored:
    received: int
    stored: int
    completed: int  # duplicates whose missed ingest was done now

    @property
    def duplicates(self) -> int:
        return self.received - self.stored


def store_batch(engine: Engine, gateway_id: str, rows: list[dict[str, Any]],
                limits: HubLimits) -> Stored:
    """Insert the records not stored yet and ingest them, in one transaction."""
    if not rows:
        return Stored(0, 0, 0)
    now = time.time()
    values = [{**r, "gateway_id": gateway_id, "received": now, "ingested": True} for r in rows]
    postgres = engine.dialect.name == "postgresql"
    insert = postgresql.insert if postgres else sqlite.insert
    # partitioned by day on PostgreSQL: its unique key holds the partition key (migration 0004)
    once = ["gateway_id", "seq", "created"] if postgres else ["gateway_id", "seq"]
    with Session(engine) as s, s.begin():
        inserted: set[int] = set()
        for i in range(0, len(values), INSERT_CHUNK):  # SQLite binds at most 32,766 values
            stmt = insert(Telemetry).values(values[i:i + INSERT_CHUNK]).on_conflict_do_nothing(
                index_elements=once).returning(Telemetry.seq)
            inserted.update(int(r[0]) for r in s.execute(stmt).all())  # RETURNING: only new rows
        pause_point("after_telemetry_insert")
        ingest(s, gateway_id, [r for r in rows if r["seq"] in inserted], limits)
        redo = _claim_unfinished(s, gateway_id, [r["seq"] for r in rows if r["seq"] not in inserted
                                                 and r["kind"] in INGESTED_KINDS])
        if redo:
            ingest(s, gateway_id, [r for r in rows if r["seq"] in redo], limits, completing=True)
        s.query(Gateway).filter(Gateway.id == gateway_id).update({"last_seen": now})
    return Stored(len(rows), len(inserted), len(redo))


def _claim_unfinished(s: Session, gateway_id: str, seqs: list[int]) -> set[int]:
    """Mark the stored records among ``seqs`` whose ingest is not known to be done; the row
    locks this takes make a concurrent resend of the same batch find nothing left to do."""
    if not seqs:
        return set()
    claimed: set[int] = set()
    for i in range(0, len(seqs), INSERT_CHUNK):
        stmt = (update(Telemetry).where(Telemetry.gateway_id == gateway_id,
                                        Telemetry.seq.in_(seqs[i:i + INSERT_CHUNK]),
                                        Telemetry.ingested.is_not(True))
                .values(ingested=True).returning(Telemetry.seq))
        claimed.update(int(r[0]) for r in s.execute(stmt).all())
    return claimed

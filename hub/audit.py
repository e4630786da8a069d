"""The hub's audit trail: the history table, hash-chained. Entries are written by many request
threads; one sealer gives them their place in the chain, in id order, so two writers can never
fork it. ``verify`` names the first entry that was edited, removed or reordered."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.store.audit import GENESIS, entry_hash
from hub.storage import HistoryEntry


def _body(h: HistoryEntry, prev: str) -> dict[str, Any]:
    return {"id": h.id, "at": round(h.at, 6), "model": h.model, "version": h.version,
            "event": h.event, "gateway_id": h.gateway_id, "detail": h.detail, "actor": h.actor,
            "prev": prev}


def seal(engine: Engine) -> int:
    """Chain the entries not sealed yet; returns how many."""
    with Session(engine) as s, s.begin():
        last = s.scalars(select(HistoryEntry).where(HistoryEntry.hash.is_not(None))
                         .order_by(HistoryEntry.id.desc()).limit(1)).first()
        prev = last.hash if last and last.hash else GENESIS
        pending = list(s.scalars(select(HistoryEntry).where(HistoryEntry.hash.is_(None))
                                 .order_by(HistoryEntry.id)))
        for h in pending:
            h.prev = prev
            h.hash = prev = entry_hash(_body(h, prev))
        return len(pending)


def verify(engine: Engine) -> tuple[int, str | None]:
    """(entries checked, the first problem or None)."""
    seal(engine)
    prev, count = GENESIS, 0
    with Session(engine) as s:
        for h in s.scalars(select(HistoryEntry).order_by(HistoryEntry.id)):
            if h.prev != prev:
                return count, (f"entry {h.id} does not follow the entry before it "
                               "(one was removed or reordered)")
            if h.hash != entry_hash(_body(h, prev)):
                return count, f"entry {h.id} ({h.event} {h.model} {h.version}) was edited"
            prev, count = h.hash, count + 1
    return count, None


def export(engine: Engine, since: float = 0.0) -> list[dict[str, Any]]:
    seal(engine)
    with Session(engine) as s:
        return [{**_body(h, h.prev or ""), "hash": h.hash} for h in s.scalars(
            select(HistoryEntry).where(HistoryEntry.at >= since).order_by(HistoryEntry.id))]

"""What the hub takes out of telemetry as it arrives: labelled training samples into their
table, and gateways' audit entries, whose hash chain is checked entry by entry."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.store.audit import entry_hash
from agent.store.codec import decode_json
from hub.db import AgentAudit, TrainingSample

log = logging.getLogger(__name__)


def ingest(engine: Engine, gateway_id: str, rows: list[dict[str, Any]], inserted: list[int]) -> None:
    """Only records stored just now: a re-sent batch adds nothing twice."""
    fresh = set(inserted)
    samples: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    for r in rows:
        if r["seq"] not in fresh or r["kind"] not in ("training_samples", "audit"):
            continue
        try:
            docs = decode_json(r["payload"])
        except ValueError as exc:
            log.warning("gateway %s record %d (%s) is not readable: %s", gateway_id, r["seq"], r["kind"], exc)
            continue
        (samples if r["kind"] == "training_samples" else audit).extend(d for d in docs if isinstance(d, dict))
    if samples:
        _store_samples(engine, gateway_id, samples)
    if audit:
        _store_audit(engine, gateway_id, audit)


def _store_samples(engine: Engine, gateway_id: str, samples: list[dict[str, Any]]) -> None:
    now = time.time()
    with Session(engine) as s, s.begin():
        for d in samples:
            try:
                s.add(TrainingSample(model=str(d["model"]), gateway_id=gateway_id, sample_id=str(d["id"]),
                                     ts=float(d["ts"]), inputs=list(d["inputs"]),
                                     x=[float(v) for v in d["x"]], label=str(d["label"]),
                                     predicted=None if d.get("predicted") is None else str(d["predicted"]),
                                     version=str(d["version"]), hard=bool(d.get("hard")), received=now))
            except (KeyError, TypeError, ValueError):
                log.warning("gateway %s sent a training sample without the needed fields", gateway_id)


def _store_audit(engine: Engine, gateway_id: str, entries: list[dict[str, Any]]) -> None:
    with Session(engine) as s, s.begin():
        last = s.scalars(select(AgentAudit).where(AgentAudit.gateway_id == gateway_id)
                         .order_by(desc(AgentAudit.seq)).limit(1)).first()
        prev_hash = last.entry.get("hash") if last else None
        prev_seq = last.seq if last else 0
        for e in sorted(entries, key=lambda e: int(e.get("seq", 0))):
            seq = int(e.get("seq", 0))
            if seq <= prev_seq:
                continue  # seen before
            ok = (e.get("hash") == entry_hash(e) and seq == prev_seq + 1
                  and ((prev_hash is None and seq == 1) or e.get("prev") == prev_hash))
            if not ok:
                log.error("gateway %s audit chain broken at entry %d", gateway_id, seq)
            s.add(AgentAudit(gateway_id=gateway_id, seq=seq, entry=e, chain_ok=ok))
            prev_hash, prev_seq = e.get("hash"), seq

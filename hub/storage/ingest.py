"""What the hub takes out of telemetry as it arrives: labelled training samples into their
table, and gateways' audit entries, whose hash chain is checked entry by entry.

Runs inside the telemetry insert's own transaction (hub.storage.telemetry), so a record is
stored with everything derived from it or not at all. Records stored by an older hub whose
ingest is not known to have run are completed on resend, without adding a sample twice.

The audit chain: entries may arrive out of order or late (an agent resends what the hub never
acknowledged when it starts), so a gap is *pending* for ``resend_window_s`` after the entry past
it arrived and broken only then, with the reason; an entry whose hash or link is wrong is broken
at once."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from agent.store.audit import GENESIS, entry_hash
from hub.limits import HubLimits, LimitError, decode_record_json
from hub.ratelimit import warn_limited
from hub.storage.tables import AgentAudit, TrainingSample

log = logging.getLogger(__name__)

INGESTED_KINDS = ("training_samples", "audit")
INT64 = 1 << 63


def ingest(s: Session, gateway_id: str, rows: list[dict[str, Any]], limits: HubLimits,
           completing: bool = False) -> None:
    """Take samples and audit entries out of ``rows`` (records stored or claimed just now).
    ``completing``: these were stored by an older hub; skip samples already present."""
    samples: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    for r in rows:
        if r["kind"] not in INGESTED_KINDS:
            continue
        try:
            docs = decode_record_json(r["payload"], limits)
        except LimitError as exc:
            warn_limited(log, f"unreadable:{gateway_id}", "gateway %s record %d (%s) is not readable: %s",
                         gateway_id, r["seq"], r["kind"], exc)
            continue
        if not isinstance(docs, list):
            docs = [docs]
        (samples if r["kind"] == "training_samples" else audit).extend(d for d in docs if isinstance(d, dict))
    if samples:
        _store_samples(s, gateway_id, samples, completing)
    if audit:
        store_audit(s, gateway_id, audit, limits.audit_resend_window_s)


def _sample(gateway_id: str, d: dict[str, Any], now: float) -> TrainingSample | None:
    try:
        ts = float(d["ts"])
        x = [float(v) for v in d["x"]]
        inputs = [str(v)[:128] for v in d["inputs"]]
        if not math.isfinite(ts) or not all(math.isfinite(v) for v in x) or len(x) != len(inputs):
            return None
        fields = {k: str(d[k]) for k in ("model", "id", "label", "version")}
        predicted = None if d.get("predicted") is None else str(d["predicted"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if any(len(v) > 128 for v in fields.values()) or len(fields["version"]) > 64 or (
            predicted is not None and len(predicted) > 128):
        return None
    return TrainingSample(model=fields["model"], gateway_id=gateway_id, sample_id=fields["id"], ts=ts,
                          inputs=inputs, x=x, label=fields["label"], predicted=predicted,
                          version=fields["version"], hard=bool(d.get("hard")), received=now)


def _store_samples(s: Session, gateway_id: str, docs: list[dict[str, Any]], completing: bool) -> None:
    now = time.time()
    samples = [t for t in (_sample(gateway_id, d, now) for d in docs) if t is not None]
    if len(samples) < len(docs):
        warn_limited(log, f"samples:{gateway_id}", "gateway %s sent %d training sample(s) without "
                     "the needed fields or with values out of range; skipped", gateway_id,
                     len(docs) - len(samples))
    if completing and samples:
        keys = {(t.model, t.sample_id, t.ts) for t in samples}
        have = set(s.execute(select(TrainingSample.model, TrainingSample.sample_id, TrainingSample.ts)
                             .where(TrainingSample.gateway_id == gateway_id,
                                    tuple_(TrainingSample.model, TrainingSample.sample_id,
                                           TrainingSample.ts).in_(list(keys)))).all())
        samples = [t for t in samples if (t.model, t.sample_id, t.ts) not in have]
    s.add_all(samples)


def _seq(e: dict[str, Any]) -> int | None:
    seq = e.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 < seq < INT64 else None


def store_audit(s: Session, gateway_id: str, entries: list[dict[str, Any]], window_s: float,
                now: float | None = None) -> None:
    """Keep new entries (by seq, once each), then verify the chain as far as it goes."""
    now = time.time() if now is None else now
    by_seq: dict[int, dict[str, Any]] = {}
    for e in entries:
        seq = _seq(e)
        if seq is None:
            warn_limited(log, f"audit:{gateway_id}", "gateway %s sent an audit entry without a valid "
                         "seq; skipped", gateway_id)
            continue
        by_seq.setdefault(seq, e)
    if by_seq:
        have = set(s.scalars(select(AgentAudit.seq).where(AgentAudit.gateway_id == gateway_id,
                                                          AgentAudit.seq.in_(list(by_seq)))))
        s.add_all(AgentAudit(gateway_id=gateway_id, seq=seq, entry=e, chain_ok=True,
                             chain_reason="not verified yet", received=now)
                  for seq, e in sorted(by_seq.items()) if seq not in have)
        s.flush()
    verify_chain(s, gateway_id, window_s, now)


def verify_chain(s: Session, gateway_id: str, window_s: float, now: float | None = None) -> None:
    """Walk from the last decided entry: each next entry is verified or broken; a gap leaves the
    rest pending until ``window_s`` after the entry past the gap arrived, then it is broken."""
    now = time.time() if now is None else now
    decided = s.scalars(select(AgentAudit).where(
        AgentAudit.gateway_id == gateway_id,
        (AgentAudit.chain_reason.is_(None)) | (AgentAudit.chain_ok.is_(False)))
        .order_by(AgentAudit.seq.desc()).limit(1)).first()
    expected = decided.seq + 1 if decided else 1
    prev_hash = (decided.entry.get("hash") if decided else GENESIS)
    pending = s.scalars(select(AgentAudit).where(AgentAudit.gateway_id == gateway_id,
                                                 AgentAudit.seq >= expected)
                        .order_by(AgentAudit.seq)).all()
    for i, a in enumerate(pending):
        e = a.entry
        if a.seq > expected:
            missing = f"{expected}" if a.seq == expected + 1 else f"{expected}-{a.seq - 1}"
            waited = now - float(a.received or now)
            if waited < window_s:
                reason = (f"waiting for entry {missing}: a resend may bring it until "
                          f"{window_s - waited:.0f} s from now")
                for later in pending[i:]:
                    later.chain_ok, later.chain_reason = True, reason
                return
            a.chain_ok, a.chain_reason = False, (
                f"entry {missing} never arrived within {window_s:g} s of entry {a.seq} "
                "(removed on the gateway or lost)")
            log.error("gateway %s audit chain broken: %s", gateway_id, a.chain_reason)
        elif e.get("hash") != entry_hash(e):
            a.chain_ok, a.chain_reason = False, (
                f"entry {a.seq} was edited: its hash does not match its content")
            log.error("gateway %s audit chain broken: %s", gateway_id, a.chain_reason)
        elif e.get("prev") != prev_hash:
            a.chain_ok, a.chain_reason = False, (
                f"entry {a.seq} does not follow entry {a.seq - 1} (its prev hash differs: "
                "an entry was edited, removed or reordered)")
            log.error("gateway %s audit chain broken: %s", gateway_id, a.chain_reason)
        else:
            a.chain_ok, a.chain_reason = True, None
        expected, prev_hash = a.seq + 1, e.get("hash")


def check_pending_chains(s: Session, window_s: float, now: float | None = None) -> int:
    """Decide the gaps whose resend window has passed (the background loop runs this)."""
    gateways = list(s.scalars(select(AgentAudit.gateway_id).where(
        AgentAudit.chain_ok.is_(True), AgentAudit.chain_reason.is_not(None)).distinct()))
    for gateway_id in gateways:
        verify_chain(s, gateway_id, window_s, now)
    return len(gateways)

"""The fleet's gateways: registration (with its token), groups, token rotation, retirement,
and the fleet table with each gateway's latest status, its models (one row per (gateway, model))
and audit chain state."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.ids import check_gateway_id, check_group
from hub.storage.history import record
from hub.storage.reports import current_entries
from hub.storage.tables import AgentAudit, Gateway, GatewayModel, GatewayStatus, Token
from hub.storage.tokens import hash_token, new_token


def add_gateway(engine: Engine, gateway_id: str, group: str | None = None) -> str:
    """Register a gateway; return its token (shown once, stored hashed)."""
    check_gateway_id(gateway_id)
    if group is not None:
        check_group(group)
    token = new_token()
    with Session(engine) as s, s.begin():
        gw = s.get(Gateway, gateway_id)
        if gw is None:
            s.add(Gateway(id=gateway_id, group=group, created=time.time()))
            s.flush()
        else:
            gw.retired = None
            if group is not None:
                gw.group = group
        s.add(Token(token_hash=hash_token(token), role="gateway", gateway_id=gateway_id,
                    created=time.time()))
        record(s, "-", "-", "gateway_added", gateway_id,
               f"group {group}" if group else None)
    return token


def list_gateways(engine: Engine) -> list[dict[str, Any]]:
    with Session(engine) as s:
        rows = s.execute(select(Gateway, GatewayStatus).outerjoin(
            GatewayStatus, GatewayStatus.gateway_id == Gateway.id).order_by(Gateway.id)).all()
        chains = audit_chains(s)
        models = {g: [model_row(name, entry, updated) for name, (entry, updated) in sorted(mine.items())]
                  for g, mine in current_entries(s).items()}
        return [{"id": g.id, "group": g.group, "created": g.created, "last_seen": g.last_seen,
                 "retired": g.retired,
                 "status": st.report if st else None, "status_updated": st.updated if st else None,
                 "models": models.get(g.id, []),
                 "audit_chain": chains.get(g.id, {"state": "empty", "entries": 0, "reason": None})}
                for g, st in rows]


def model_row(name: str, entry: dict[str, Any], updated: float) -> dict[str, Any]:
    """One (gateway, model) of the fleet table: its version, shadow, watch, health, and the
    model's entry of the gateway's latest report as sent."""
    entry = entry if isinstance(entry, dict) else {}
    active, shadow = (entry.get("active") or {}), (entry.get("shadow") or {})
    watch = entry.get("watch") or {}
    return {"name": name, "version": active.get("version"), "sha256": active.get("sha256"),
            "since": active.get("since"), "shadow": shadow.get("version"),
            "watching": watch.get("version"), "health": entry.get("health"),
            "rejected": len(entry.get("rejected") or []), "last_error": entry.get("last_error"),
            "updated": updated, "report": entry}


def audit_chains(s: Session) -> dict[str, dict[str, Any]]:
    """Per gateway: entries received, and whether the chain is intact, waiting for a resend
    (a gap inside the resend window) or broken, with the first reason."""
    counts = dict(s.execute(select(AgentAudit.gateway_id, func.count())
                            .group_by(AgentAudit.gateway_id)).all())
    out = {g: {"state": "ok", "entries": n, "reason": None} for g, n in counts.items()}
    flagged = s.execute(select(AgentAudit.gateway_id, AgentAudit.chain_ok, AgentAudit.chain_reason)
                        .where(AgentAudit.chain_reason.is_not(None)).order_by(AgentAudit.seq))
    for gateway_id, ok, reason in flagged:
        doc = out[gateway_id]
        if not ok and doc["state"] != "broken":
            doc["state"], doc["reason"] = "broken", reason
        elif ok and doc["state"] == "ok":
            doc["state"], doc["reason"] = "pending", reason
    return out


def set_group(engine: Engine, gateway_id: str, group: str | None) -> None:
    if group is not None:
        check_group(group)
    with Session(engine) as s, s.begin():
        gw = s.get(Gateway, gateway_id)
        if gw is None:
            raise LookupError(gateway_id)
        gw.group = group
        record(s, "-", "-", "gateway_group", gateway_id, f"group {group or '(none)'}")


def rotate_token(engine: Engine, gateway_id: str) -> str:
    """Revoke every token of the gateway and issue a new one (a stolen PC, a reinstalled one)."""
    with Session(engine) as s, s.begin():
        if s.get(Gateway, gateway_id) is None:
            raise LookupError(gateway_id)
        s.query(Token).filter(Token.gateway_id == gateway_id).delete()
        token = new_token()
        s.add(Token(token_hash=hash_token(token), role="gateway", gateway_id=gateway_id,
                    created=time.time()))
        record(s, "-", "-", "gateway_token", gateway_id, "tokens rotated")
    return token


def remove_gateway(engine: Engine, gateway_id: str) -> None:
    """Revoke the gateway's tokens and forget its status; its telemetry stays for the record."""
    with Session(engine) as s, s.begin():
        gw = s.get(Gateway, gateway_id)
        if gw is None:
            raise LookupError(gateway_id)
        s.query(Token).filter(Token.gateway_id == gateway_id).delete()
        s.query(GatewayStatus).filter(GatewayStatus.gateway_id == gateway_id).delete()
        s.query(GatewayModel).filter(GatewayModel.gateway_id == gateway_id).delete()
        gw.group, gw.retired = None, time.time()
        record(s, "-", "-", "gateway_retired", gateway_id)

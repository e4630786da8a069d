"""The per-model entries of the gateways' status reports, as stored: ``gateway_models`` rows,
written with the report by hub.reports.store_report. A ``gateway_status`` row newer than its
gateway's entries (written by another path: an older hub, a tool or benchmark writing the row
itself) is read as the report of a one-model agent, so no reader ever judges a stale entry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.storage.tables import GatewayModel, GatewayStatus

# the per-model fields of a report, at the top level of a one-model agent's report
MODEL_FIELDS = ("active", "shadow", "watch", "rejected", "alarms", "health", "metrics", "last_error")

Entries = dict[str, dict[str, tuple[dict[str, Any], float]]]  # gateway -> model -> (entry, updated)


def model_entries(report: dict[str, Any], fallback: str | None = None) -> dict[str, dict[str, Any]]:
    """{model name: its entry} of a report; ``fallback`` names the entry of a one-model report
    that names no active model."""
    models = report.get("models")
    if isinstance(models, list):
        return {str(e["name"]): dict(e) for e in models if isinstance(e, dict) and e.get("name")}
    name = (report.get("active") or {}).get("name") or fallback
    if not name:
        return {}
    return {str(name): {"name": name, **{k: report.get(k) for k in MODEL_FIELDS}}}


def current_entries(s: Session, models: list[str] | None = None) -> Entries:
    """Each gateway's latest entry per model (of ``models`` only, when given)."""
    q = select(GatewayModel)
    if models is not None:
        q = q.where(GatewayModel.model.in_(models))
    out: Entries = {}
    for m in s.scalars(q):
        entry = m.report if isinstance(m.report, dict) else {}
        out.setdefault(m.gateway_id, {})[m.model] = (entry, m.updated)
    entries_at = dict(s.execute(select(GatewayModel.gateway_id, func.max(GatewayModel.updated))
                                .group_by(GatewayModel.gateway_id)).all())
    stale = [g for g, updated in s.execute(select(GatewayStatus.gateway_id, GatewayStatus.updated))
             if entries_at.get(g) is None or updated > entries_at[g]]
    for start in range(0, len(stale), 500):
        for g, report, updated in s.execute(select(
                GatewayStatus.gateway_id, GatewayStatus.report, GatewayStatus.updated).where(
                GatewayStatus.gateway_id.in_(stale[start:start + 500]))):
            derived = model_entries(report if isinstance(report, dict) else {})
            kept = {n: (e, updated) for n, e in derived.items() if models is None or n in models}
            if kept or g in out:
                out[g] = kept
    return out

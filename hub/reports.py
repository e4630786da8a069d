"""Gateways' status reports, stored per (gateway, model).

A report of a several-model agent carries ``models: [...]``, one entry per model with that
model's fields (active, shadow, watch, rejected, alarms, health, metrics, last_error); a report
of a one-model agent (no ``models``) is one entry named by its active model, or, while it runs
none, by the model the hub serves it. The whole report is kept as well (``GatewayStatus``: the
gateway's own figures, backlog, config); each entry replaces the gateway's entry of that model
and a model the report no longer names is dropped. Rollouts, retrain triggers, the fleet table
and cards read the entries (``model_reports``), so a report of one model never judges another.

``MODEL_FIELDS``, ``model_entries``: hub.storage.reports (the fleet table reads entries too).

May import: hub.storage. Never hub.api, hub.rollouts (which imports this) or the CLI.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.storage import Deployment, Gateway, GatewayMetric, GatewayModel, GatewayStatus, record
from hub.storage.reports import MODEL_FIELDS, current_entries, model_entries

__all__ = ["METRIC_EVERY_S", "MODEL_FIELDS", "model_entries", "model_reports", "served_model",
           "store_report"]

METRIC_EVERY_S = 5.0  # one chart point per (gateway, model) per this many seconds
_SKIPPED = ("rolled_back", "rejected", "superseded")  # hub.rollouts.SKIPPED


def served_model(s: Session, gateway: Gateway) -> str | None:
    """The model whose entry is the top level of the gateway's desired state, what a one-model
    agent is being sent: the model it last named active if a deployment of it applies, else
    the model of the newest deployment that applies (a canary only to its canaries)."""
    targets = [gateway.id] + ([f"group:{gateway.group}"] if gateway.group else [])
    applying = [d.model for d in s.scalars(select(Deployment).where(
        Deployment.target.in_(targets), Deployment.status.not_in(_SKIPPED)).order_by(desc(Deployment.id)))
        if d.status != "canary" or gateway.id in (d.canary or [])]
    if gateway.active_model in applying:
        return gateway.active_model
    return applying[0] if applying else gateway.active_model


def store_report(engine: Engine, gateway_id: str, report: dict[str, Any]) -> str | None:
    """Keep the report and its per-model entries; return the model the gateway last named
    active (its ``active_model``), which picks the legacy top level of its desired state."""
    now = time.time()
    with Session(engine) as s, s.begin():
        row = s.get(GatewayStatus, gateway_id)
        if row is None:
            s.add(GatewayStatus(gateway_id=gateway_id, report=report, updated=now))
        else:
            row.report, row.updated = report, now
        gw = s.get(Gateway, gateway_id)
        named = (report.get("active") or {}).get("name")
        if gw is not None and isinstance(named, str) and named and gw.active_model != named:
            gw.active_model = named
        fallback = None
        if gw is not None and not isinstance(report.get("models"), list) and not named:
            fallback = served_model(s, gw)
        entries = model_entries(report, fallback)
        kept = {m.model: m for m in s.scalars(select(GatewayModel).where(
            GatewayModel.gateway_id == gateway_id))}
        for name, entry in entries.items():
            prev = kept.pop(name, None)
            _record_changes(s, gateway_id, prev.report if prev else {}, entry)
            # a chart point at most every few seconds, but always when the version or the
            # health changed: the chart must show the moment a model was switched or alarmed
            due = prev is None or prev.metric_at is None or now - prev.metric_at >= METRIC_EVERY_S \
                or _turning_point(prev.report or {}, entry)
            if prev is None:
                prev = GatewayModel(gateway_id=gateway_id, model=name, report=entry, updated=now)
                s.add(prev)
            else:
                prev.report, prev.updated = entry, now
            if due:
                prev.metric_at = now
                s.add(_metric_point(gateway_id, now, name, entry))
        for gone in kept.values():  # a model the gateway no longer runs
            s.delete(gone)
        s.query(Gateway).filter(Gateway.id == gateway_id).update({"last_seen": now})
        return gw.active_model if gw is not None else None


def model_reports(s: Session, models: list[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """{model: {gateway: its entry}} of the latest reports (of ``models`` only, when given)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for gateway_id, mine in current_entries(s, models).items():
        for model, (entry, _updated) in mine.items():
            out.setdefault(model, {})[gateway_id] = entry
    return out


def _turning_point(before: dict[str, Any], after: dict[str, Any]) -> bool:
    was, now = before.get("active") or {}, after.get("active") or {}
    return was.get("version") != now.get("version") or before.get("health") != after.get("health")


def _metric_point(gateway_id: str, now: float, model: str, entry: dict[str, Any]) -> GatewayMetric:
    active = entry.get("active") or {}
    monitor = (entry.get("metrics") or {}).get("monitor") or {}
    psi = [*(monitor.get("psi") or {}).values(), monitor.get("prediction_psi")]
    scores = [float(v) for v in psi if isinstance(v, (int, float))]  # the largest PSI now
    acc = monitor.get("rolling_accuracy")
    figures = {k: monitor.get(k) for k in ("rolling_balanced_accuracy", "rolling_cost_per_part")}
    figures["recall"] = {c: v.get("recall") for c, v in (monitor.get("rolling_per_class") or {}).items()
                         if isinstance(v, dict)}
    return GatewayMetric(gateway_id=gateway_id, at=now, model=model, version=active.get("version"),
                         accuracy=float(acc) if isinstance(acc, (int, float)) else None,
                         drift_score=max(scores) if scores else None, health=entry.get("health"),
                         figures=figures)


def _record_changes(s: Session, gateway_id: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    """History entries for what a model's entry shows changed on the gateway."""
    was, now = (before.get("active") or {}), (after.get("active") or {})
    if now.get("sha256") and now.get("sha256") != was.get("sha256"):
        record(s, now.get("name", "?"), now.get("version", "?"), "activated", gateway_id,
               now.get("reason"))
    seen = {r.get("sha256") for r in before.get("rejected") or []}
    for r in after.get("rejected") or []:
        if r.get("sha256") not in seen:
            record(s, r.get("name", "?"), r.get("version", "?"), "rejected", gateway_id, r.get("reason"))

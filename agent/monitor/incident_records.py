"""Incident records: an incident, the events it emits, the flood guard, and what of it goes
into the audit log. The rules that make and end incidents are in agent.monitor.incidents."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.monitor.alarms import MonitorEvent

CHANGE_POINT_DETECTORS = {"cusum", "resid_cusum", "scale_cusum", "tie_cusum", "pca_cusum", "error_cusum",
                          "pooled_cusum", "innovation_glr"}
CAUSE_CHAIN = {"inputs", "outputs"}  # outputs follow from inputs: one problem seen twice
MAX_SHELVE_S = 7 * 24 * 3600.0  # EEMUA 191: shelving is always time-limited


def family(kind: str, detector: str) -> str:
    """The kind of detector, as the grouping rules see it: inputs, outputs or labels."""
    if kind == "performance":
        return "labels" if detector == "error_cusum" else "outputs"
    return "outputs" if kind == "prediction_drift" else "inputs"


@dataclass
class Incident:
    id: str
    model: str
    model_version: str
    opened_index: int
    opened_ts: float
    level: str
    state: str = "active"  # active | returned (back to normal, alarm not acknowledged) | closed
    families: list[str] = field(default_factory=list)
    detectors: list[str] = field(default_factory=list)  # "kind/detector", in the order they joined
    features: list[str] = field(default_factory=list)
    consequential: list[str] = field(default_factory=list)  # grouped without a notification
    conditions: list[list[Any]] = field(default_factory=list)  # [kind, detector, feature] up now
    start_index: int | None = None  # estimated start of the change behind it
    start_ts: float | None = None
    start_from: str = "window"  # "change point" (a CUSUM's estimate) or "window" (a window's start)
    last_index: int = 0
    notifications: int = 0
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    shelved_by: str | None = None
    shelved_until: float | None = None
    shelve_reason: str | None = None
    closed_index: int | None = None
    closed_reason: str | None = None
    journal: list[dict[str, Any]] = field(default_factory=list)  # who did what when

    @property
    def open(self) -> bool:
        return self.state != "closed"

    def summary(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["journal"] = self.journal[-20:]
        return doc


@dataclass(frozen=True)
class IncidentEvent:
    """What happened to an incident: the document sent to MQTT, the outbox and the hub."""

    incident_id: str
    action: str  # raised | escalated | returned | closed | acknowledged | shelved | unshelved
    notify: bool  # a notification to send (raised, escalated, back from shelving)
    suppressed: str | None  # a notification held back: "shelved" or "flood"
    level: str  # the incident's level after this: warning | alarm
    state: str  # active | returned | closed
    reason: str
    model: str
    model_version: str
    index: int  # sample index of the detection (operator actions: the latest sample)
    timestamp: float
    kind: str | None
    detector: str | None
    feature: str | None
    score: float | None
    threshold: float | None
    top_features: list[str]
    start_index: int | None  # estimated start of the change behind this event
    start_timestamp: float | None
    incident_start_index: int | None
    incident_start_timestamp: float | None
    families: list[str]
    detectors: list[str]
    features: list[str]
    consequential: list[str]
    notifications: int  # sent for this incident so far
    acknowledged_by: str | None
    acknowledged_at: float | None
    shelved_by: str | None
    shelved_until: float | None
    shelve_reason: str | None
    held_back: int  # flood guard: notifications held back since the last one sent
    emitted: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


class FloodGuard:
    """At most ``limit`` notifications per ``window_s`` (of sample time); the rest are held
    back and counted. One guard may be shared by the incident books of several models."""

    def __init__(self, limit: int = 10, window_s: float = 600.0) -> None:
        self.limit, self.window_s = limit, window_s
        self.sent: deque[float] = deque()
        self.held_total = 0
        self.held_pending = 0  # since the last notification sent

    def allow(self, ts: float) -> bool:
        ts = time.time() if math.isnan(ts) else ts
        while self.sent and self.sent[0] <= ts - self.window_s:
            self.sent.popleft()
        if len(self.sent) < self.limit:
            self.sent.append(ts)
            return True
        self.held_total += 1
        self.held_pending += 1
        return False

    def take_held(self) -> int:
        held, self.held_pending = self.held_pending, 0
        return held

    def state(self) -> dict[str, Any]:
        return {"sent": list(self.sent), "held_total": self.held_total, "held_pending": self.held_pending}

    def restore(self, s: dict[str, Any]) -> None:
        self.sent = deque(float(t) for t in s.get("sent", []))
        self.held_total = int(s.get("held_total", 0))
        self.held_pending = int(s.get("held_pending", 0))



def _what(e: MonitorEvent) -> str:
    return f"{e.kind}/{e.detector}{' [' + e.feature + ']' if e.feature else ''}"


def audit_record(e: IncidentEvent) -> tuple[str, str, str, dict[str, Any]] | None:
    """(actor, action, why, detail) for the audit log, or None: alarms, acknowledgements and
    shelving are recorded; warnings and returns to normal are not."""
    detail: dict[str, Any] = {"incident": e.incident_id, "index": e.index, "features": e.features}
    if e.action in ("raised", "escalated", "unshelved") and e.level == "alarm":
        what = f"{e.kind}/{e.detector}{' [' + e.feature + ']' if e.feature else ''}" if e.kind else ""
        return "agent", "alarm", f"{e.reason} {what}".strip(), {
            **detail, "score": e.score, "threshold": e.threshold, "suppressed": e.suppressed}
    if e.action == "acknowledged":
        return e.acknowledged_by or "operator", "alarm_acknowledged", e.reason, detail
    if e.action == "shelved":
        return e.shelved_by or "operator", "alarm_shelved", e.shelve_reason or "", {
            **detail, "until": e.shelved_until}
    if e.action == "unshelved":
        return "agent", "alarm_unshelved", e.reason, detail
    return None

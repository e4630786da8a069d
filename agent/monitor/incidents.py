"""Alarm management after ISA-18.2 / EEMUA 191: detector conditions become incidents.

An incident is one problem of one model version with a cause: the detector kinds and the
features involved. The rules:

* One notification when an incident is raised. Another only when it escalates: its level rises
  (warning -> alarm), or a new kind of detector joins it. Features that join are added to the
  incident and shown, not notified.
* Consequential alarms are grouped, not notified: the model's outputs (prediction drift, CBPE's
  expected accuracy) follow from its inputs, so an output detector joining an input incident, or
  the reverse, is the same problem seen twice. Labelled performance (the label error CUSUM) is
  evidence of its own: it joining an input or output incident, or the reverse, re-notifies.
* A warning-only incident ends when all its conditions are back to normal. An alarm latches:
  it ends when back to normal *and* acknowledged. Acknowledging does not end a problem that
  persists: the incident stays open (acknowledged) and its detectors firing again are absorbed.
* Shelving (time-limited, audited) suppresses an incident's notifications until it expires, and
  the notifications of new incidents of the same cause (same kind of detector and a shared
  feature) meanwhile; when it expires with the incident still open, it is notified again.
* Flood guard: at most ``limit`` notifications per ``window_s`` per guard; beyond that they are
  held back (recorded, not sent) and counted; the next one sent carries the count.

Sample time orders detections (replay gives the same incidents as run); operator actions and
shelving expiry use wall time.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.monitor.alarms import LEVELS, MonitorEvent

CHANGE_POINT_DETECTORS = {"cusum", "resid_cusum", "scale_cusum", "pca_cusum", "error_cusum"}
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


class IncidentBook:
    """The incidents of one model version; at most one is open at a time (everything that goes
    wrong meanwhile joins it, by the rules above)."""

    def __init__(self, model: str, version: str, bundle_sha256: str,
                 flood: FloodGuard | None = None, keep_closed: int = 50) -> None:
        self.model, self.version, self.sha256 = model, version, bundle_sha256
        self.flood = flood or FloodGuard()
        self.current: Incident | None = None
        self.closed: deque[Incident] = deque(maxlen=keep_closed)
        self.shelves: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {"incidents": 0, "notifications": 0, "suppressed_shelved": 0,
                                       "suppressed_flood": 0}
        self.last_index = -1

    # -- detections ---------------------------------------------------------------------------
    def apply(self, events: list[MonitorEvent]) -> list[IncidentEvent]:
        """Condition changes, in sample order -> incident events."""
        out: list[IncidentEvent] = []
        for e in events:
            self.last_index = max(self.last_index, e.index)
            if e.level == "ok":
                out += self._returned(e)
            else:
                out += self._detected(e)
        return out

    def _detected(self, e: MonitorEvent) -> list[IncidentEvent]:
        fam = family(e.kind, e.detector)
        inc = self.current
        if inc is None:
            inc = self._open(e, fam)
            return [self._notification(inc, "raised", e, f"raised by {_what(e)}")]
        inc.last_index = e.index
        key = [e.kind, e.detector, e.feature]
        if key not in inc.conditions:
            inc.conditions.append(key)
        self._add_features(inc, e)
        det = f"{e.kind}/{e.detector}"
        if det not in inc.detectors:
            inc.detectors.append(det)
        self._estimate_start(inc, e)
        reasons = []
        if LEVELS[e.level] > LEVELS[inc.level]:
            reasons.append(f"{inc.level} -> {e.level} ({_what(e)})")
            inc.level = e.level
        if fam not in inc.families:
            inc.families.append(fam)
            if fam in CAUSE_CHAIN and set(inc.families) <= CAUSE_CHAIN:
                inc.consequential.append(det)  # the same problem seen from the other side
            else:
                reasons.append(f"new kind of detector: {fam} ({_what(e)})")
        if inc.state == "returned":
            inc.state = "active"
        if not reasons:
            return []
        if inc.acknowledged_by is not None:  # something new: it needs looking at again
            inc.journal.append({"at": time.time(), "action": "acknowledgement reset",
                                "by": "agent", "why": "; ".join(reasons)})
            inc.acknowledged_by = inc.acknowledged_at = None
        return [self._notification(inc, "escalated", e, "; ".join(reasons))]

    def _open(self, e: MonitorEvent, fam: str) -> Incident:
        digest = hashlib.sha256(f"{self.sha256}:{e.index}:{e.kind}:{e.detector}:{e.feature}".encode())
        inc = Incident(digest.hexdigest()[:8], self.model, self.version, e.index, e.timestamp,
                       e.level, families=[fam], detectors=[f"{e.kind}/{e.detector}"],
                       conditions=[[e.kind, e.detector, e.feature]], last_index=e.index)
        self._add_features(inc, e)
        self._estimate_start(inc, e)
        shelf = self._shelf_for(inc)
        if shelf is not None:  # a shelved cause came back: it stays quiet until the shelf expires
            inc.shelved_by, inc.shelved_until = shelf["by"], shelf["until"]
            inc.shelve_reason = shelf["reason"]
        self.current = inc
        self.counts["incidents"] += 1
        return inc

    @staticmethod
    def _add_features(inc: Incident, e: MonitorEvent) -> None:
        names = [e.feature] if e.feature is not None and e.feature != "score" else []
        if e.kind == "multivariate_drift":
            names = e.top_features[:2]
        for name in names:
            if name not in inc.features:
                inc.features.append(name)

    @staticmethod
    def _estimate_start(inc: Incident, e: MonitorEvent) -> None:
        if e.start_index is None:
            return
        # the first change point it gets stays: later detectors of a persisting drift restart
        # their sums after the onset, and an earlier one is as likely noise before it
        point = e.detector in CHANGE_POINT_DETECTORS
        better = inc.start_index is None or (point and inc.start_from != "change point")
        if better:
            inc.start_index, inc.start_ts = e.start_index, e.start_timestamp
            inc.start_from = "change point" if point else "window"

    def _returned(self, e: MonitorEvent) -> list[IncidentEvent]:
        inc = self.current
        key = [e.kind, e.detector, e.feature]
        if inc is None or key not in inc.conditions:
            return []
        inc.conditions.remove(key)
        if inc.conditions:
            return []
        if inc.level == "warning" or inc.acknowledged_by is not None:
            return [self._close(inc, e.index, e.timestamp, "back to normal")]
        inc.state = "returned"
        return [self._event(inc, "returned", None, "back to normal; the alarm waits for an "
                            "acknowledgement", e.index, e.timestamp)]

    def _close(self, inc: Incident, index: int, ts: float, why: str) -> IncidentEvent:
        inc.state, inc.closed_index, inc.closed_reason = "closed", index, why
        self.closed.append(inc)
        self.current = None
        return self._event(inc, "closed", None, why, index, ts)

    # -- operator actions -----------------------------------------------------------------------
    def find(self, incident_id: str) -> Incident | None:
        if self.current is not None and self.current.id == incident_id:
            return self.current
        return next((i for i in self.closed if i.id == incident_id), None)

    def acknowledge(self, incident_id: str | None, by: str, now: float) -> list[IncidentEvent]:
        inc = self.current
        if inc is None or (incident_id is not None and inc.id != incident_id):
            return []
        inc.acknowledged_by, inc.acknowledged_at = by, now
        inc.journal.append({"at": now, "action": "acknowledged", "by": by})
        out = [self._event(inc, "acknowledged", None, f"acknowledged by {by}", self.last_index, now)]
        if inc.state == "returned":
            out.append(self._close(inc, self.last_index, now, f"back to normal, acknowledged by {by}"))
        return out

    def shelve(self, incident_id: str, until: float, by: str, reason: str, now: float) -> (
            list[IncidentEvent]):
        inc = self.current
        if inc is None or inc.id != incident_id:
            return []
        until = min(until, now + MAX_SHELVE_S)
        inc.shelved_by, inc.shelved_until, inc.shelve_reason = by, until, reason
        inc.journal.append({"at": now, "action": "shelved", "by": by, "why": reason, "until": until})
        self.shelves = [s for s in self.shelves if s["incident"] != inc.id]
        self.shelves.append({"incident": inc.id, "families": list(inc.families),
                             "features": list(inc.features), "until": until, "by": by,
                             "reason": reason})
        return [self._event(inc, "shelved", None, f"shelved by {by} until "
                            f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(until))}: {reason}",
                            self.last_index, now)]

    def unshelve(self, incident_id: str | None, by: str, now: float, why: str) -> list[IncidentEvent]:
        """End a shelf (``incident_id`` None: every expired one). An incident still open comes
        back as a notification."""
        if incident_id is None:
            ending = [sh for sh in self.shelves if sh["until"] <= now]
        else:
            ending = [sh for sh in self.shelves if sh["incident"] == incident_id]
        self.shelves = [sh for sh in self.shelves if sh not in ending]
        inc = self.current
        if inc is None or inc.shelved_until is None:
            return []
        if (incident_id is not None and inc.id != incident_id) or (
                incident_id is None and inc.shelved_until > now):
            return []
        inc.shelved_by = inc.shelved_until = inc.shelve_reason = None
        inc.journal.append({"at": now, "action": "unshelved", "by": by, "why": why})
        return [self._notification(inc, "unshelved", None, f"{why}; the incident is still open", now=now)]

    def expire(self, now: float) -> list[IncidentEvent]:
        if not any(s["until"] <= now for s in self.shelves) and not (
                self.current is not None and self.current.shelved_until is not None
                and self.current.shelved_until <= now):
            return []
        return self.unshelve(None, "agent", now, "shelving expired")

    def _shelf_for(self, inc: Incident) -> dict[str, Any] | None:
        for shelf in self.shelves:
            if set(inc.families) & set(shelf["families"]) and (
                    not inc.features or not shelf["features"]
                    or set(inc.features) & set(shelf["features"])):
                return shelf
        return None

    # -- events ---------------------------------------------------------------------------------
    def _notification(self, inc: Incident, action: str, e: MonitorEvent | None, reason: str,
                      now: float | None = None) -> IncidentEvent:
        ts = e.timestamp if e is not None else (now if now is not None else time.time())
        suppressed = None
        if inc.shelved_until is not None:
            suppressed = "shelved"
        elif not self.flood.allow(ts if e is not None else float("nan")):
            suppressed = "flood"
        if suppressed is None:
            inc.notifications += 1
            self.counts["notifications"] += 1
        else:
            self.counts[f"suppressed_{suppressed}"] += 1
        held = self.flood.take_held() if suppressed is None else 0
        index = e.index if e is not None else self.last_index
        return self._event(inc, action, e, reason, index, ts, notify=suppressed is None,
                           suppressed=suppressed, held=held)

    def _event(self, inc: Incident, action: str, e: MonitorEvent | None, reason: str, index: int,
               ts: float, notify: bool = False, suppressed: str | None = None,
               held: int = 0) -> IncidentEvent:
        start, start_ts = inc.start_index, inc.start_ts
        if e is not None and e.start_index is not None and e.detector in CHANGE_POINT_DETECTORS:
            start, start_ts = e.start_index, e.start_timestamp  # this detection's own estimate
        return IncidentEvent(
            inc.id, action, notify, suppressed, inc.level, inc.state, reason, inc.model,
            inc.model_version, index, ts, e.kind if e else None, e.detector if e else None,
            e.feature if e else None, e.score if e else None, e.threshold if e else None,
            list(e.top_features) if e else [], start, start_ts, inc.start_index, inc.start_ts,
            list(inc.families), list(inc.detectors), list(inc.features), list(inc.consequential),
            inc.notifications, inc.acknowledged_by, inc.acknowledged_at, inc.shelved_by,
            inc.shelved_until, inc.shelve_reason, held)

    # -- reading --------------------------------------------------------------------------------
    def open_incidents(self) -> list[Incident]:
        return [self.current] if self.current is not None else []

    def worst(self) -> str:
        return self.current.level if self.current is not None else "ok"

    def figures(self) -> dict[str, Any]:
        return {**self.counts, "open": [i.summary() for i in self.open_incidents()],
                "recent": [i.summary() for i in list(self.closed)[-10:]],
                "held_back_total": self.flood.held_total, "flood_limit": self.flood.limit,
                "flood_window_s": self.flood.window_s, "shelves": list(self.shelves)}

    def state(self) -> dict[str, Any]:
        return {"current": asdict(self.current) if self.current else None,
                "closed": [asdict(i) for i in self.closed], "shelves": self.shelves,
                "counts": self.counts, "last_index": self.last_index, "flood": self.flood.state()}

    def restore(self, s: dict[str, Any]) -> None:
        self.current = Incident(**s["current"]) if s.get("current") else None
        self.closed.clear()
        self.closed.extend(Incident(**i) for i in s.get("closed", []))
        self.shelves = list(s.get("shelves", []))
        self.counts.update(s.get("counts", {}))
        self.last_index = int(s.get("last_index", -1))
        self.flood.restore(s.get("flood", {}))


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

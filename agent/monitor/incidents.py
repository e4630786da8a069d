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
import time
from collections import deque
from dataclasses import asdict
from typing import Any

from agent.monitor.alarms import LEVELS, MonitorEvent
from agent.monitor.incident_records import (
    CAUSE_CHAIN,
    CHANGE_POINT_DETECTORS,
    MAX_SHELVE_S,
    FloodGuard,
    Incident,
    IncidentEvent,
    _what,
    audit_record,
    family,
)

__all__ = ["CAUSE_CHAIN", "CHANGE_POINT_DETECTORS", "MAX_SHELVE_S", "FloodGuard", "Incident",
           "IncidentBook", "IncidentEvent", "audit_record", "family"]


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
        elif e.detector in ("pooled_cusum", "innovation_glr"):  # the streams that moved together
            names = list(e.top_features)
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


"""Alarm states per model, detector and feature: OK -> WARNING -> ALARM with hysteresis.

An ALARM stays latched until acknowledged or the model version changes; a WARNING clears by
itself once its detector is back under the hysteresis level. Every transition is an event.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

LEVELS = {"ok": 0, "warning": 1, "alarm": 2}


@dataclass(frozen=True)
class MonitorEvent:
    index: int  # 0-based sample index at which the detector fired
    timestamp: float  # time of that sample
    kind: str  # data_drift | prediction_drift | multivariate_drift | performance
    feature: str | None
    detector: str
    level: str  # warning | alarm | ok (a clear or an acknowledgement)
    score: float
    threshold: float
    model: str
    model_version: str
    top_features: list[str] = field(default_factory=list)
    start_index: int | None = None  # estimated start of the change
    start_timestamp: float | None = None
    emitted: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def report_row(self) -> dict[str, Any]:
        """The replay report's event shape (a contract)."""
        import datetime as dt

        return {"index": self.index,
                "timestamp": dt.datetime.fromtimestamp(self.timestamp, dt.UTC).isoformat(),
                "kind": self.kind, "feature": self.feature, "detector": self.detector,
                "level": self.level, "score": round(self.score, 6),
                "threshold": round(self.threshold, 6),
                "top_features": self.top_features, "start_index": self.start_index}


class AlarmBook:
    def __init__(self) -> None:
        self.states: dict[tuple[str, str, str | None], str] = {}
        self.since: dict[tuple[str, str, str | None], float] = {}

    @staticmethod
    def key(e: MonitorEvent) -> tuple[str, str, str | None]:
        return (e.kind, e.detector, e.feature)

    def raise_level(self, event: MonitorEvent) -> MonitorEvent | None:
        """Apply a detection; return it as a transition event, or None if nothing changes."""
        key = self.key(event)
        current = self.states.get(key, "ok")
        if LEVELS[event.level] <= LEVELS[current]:
            return None  # already there, or latched higher
        self.states[key] = event.level
        self.since[key] = event.timestamp
        return event

    def clear(self, kind: str, detector: str, feature: str | None, template: MonitorEvent) -> (
            MonitorEvent | None):
        """The detector is back to normal: a WARNING clears; an ALARM stays latched."""
        key = (kind, detector, feature)
        if self.states.get(key) != "warning":
            return None
        del self.states[key]
        return template

    def acknowledge(self) -> list[tuple[str, str, str | None]]:
        """Clear every latched alarm (an operator has looked at it)."""
        cleared = [k for k, v in self.states.items() if v == "alarm"]
        for k in cleared:
            del self.states[k]
        return cleared

    def worst(self) -> str:
        return max(self.states.values(), key=lambda s: LEVELS[s], default="ok")

    def active(self) -> list[dict[str, Any]]:
        return [{"kind": k[0], "detector": k[1], "feature": k[2], "level": v,
                 "since": self.since.get(k)} for k, v in sorted(self.states.items(), key=str)]

    def state(self) -> dict[str, Any]:
        return {"states": [[*k, v, self.since.get(k)] for k, v in self.states.items()]}

    def restore(self, s: dict[str, Any]) -> None:
        self.states = {(a, b, c): v for a, b, c, v, _ in s["states"]}
        self.since = {(a, b, c): t for a, b, c, _, t in s["states"] if t is not None}

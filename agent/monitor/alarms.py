"""Detector conditions per model, detector and feature: OK -> WARNING -> ALARM and back.

A condition is one detector on one stream being out of normal. It rises with its detector and
returns to normal when the detector has been back below its warning level for the off-delay
(window detectors: below 80% of it); it does not latch. What latches, is acknowledged and shelved
is the incident the conditions belong to (agent.monitor.incidents).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

LEVELS = {"ok": 0, "warning": 1, "alarm": 2}
Key = tuple[str, str, str | None]


@dataclass(frozen=True)
class MonitorEvent:
    """A condition changed: a detector on a stream rose to ``level``, or returned to normal."""

    index: int  # 0-based sample index at which the detector fired
    timestamp: float  # time of that sample
    kind: str  # data_drift | prediction_drift | multivariate_drift | performance
    feature: str | None
    detector: str
    level: str  # warning | alarm | ok (returned to normal)
    score: float
    threshold: float
    model: str
    model_version: str
    top_features: list[str] = field(default_factory=list)
    start_index: int | None = None  # estimated start of the change
    start_timestamp: float | None = None
    emitted: float = field(default_factory=time.time)

    @property
    def key(self) -> Key:
        return (self.kind, self.detector, self.feature)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def report_row(self) -> dict[str, Any]:
        """The replay report's event shape (a contract)."""
        return {"index": self.index,
                "timestamp": dt.datetime.fromtimestamp(self.timestamp, dt.UTC).isoformat(),
                "kind": self.kind, "feature": self.feature, "detector": self.detector,
                "level": self.level, "score": round(self.score, 6),
                "threshold": round(self.threshold, 6),
                "top_features": self.top_features, "start_index": self.start_index}


class AlarmBook:
    """The conditions of one model version that are out of normal now."""

    def __init__(self) -> None:
        self.states: dict[Key, str] = {}
        self.since: dict[Key, float] = {}

    def raise_level(self, event: MonitorEvent) -> MonitorEvent | None:
        """Apply a detection; return it as a transition, or None if nothing changes."""
        current = self.states.get(event.key, "ok")
        if LEVELS[event.level] <= LEVELS[current]:
            return None  # already there or higher
        self.states[event.key] = event.level
        self.since.setdefault(event.key, event.timestamp)
        return event

    def clear(self, key: Key, template: MonitorEvent) -> MonitorEvent | None:
        """The detector is back to normal: the condition ends (``template`` is its event)."""
        if key not in self.states:
            return None
        del self.states[key]
        self.since.pop(key, None)
        return template

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


TOP = 3  # streams named in an event


def top_streams(scores: np.ndarray, kinds: list[str], columns: list[str | None], kind: str,
         name: str | None) -> list[str]:
    """The streams of the same kind with the largest statistic, ``name`` first."""
    same = [i for i in range(len(kinds)) if kinds[i] == kind and columns[i] is not None]
    top = [str(columns[i]) for i in sorted(same, key=lambda i: -scores[i])[:TOP]]
    if name is not None and name not in top:
        top = [name, *top[: TOP - 1]]
    return top

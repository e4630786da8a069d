"""Model health in the running agent, per model: the monitor of the active version, its
incidents, the pending label table, detector snapshots, and operators' requests (acknowledge,
shelve). The service feeds it every inference batch and every label; it returns the incident
events to send (notifications and state changes), never raw detector transitions."""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import MonitoringConfig
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.inference.model import LoadedModel
from agent.inference.runtimes import RuntimeOutput
from agent.monitor.budget import describe
from agent.monitor.incidents import FloodGuard, IncidentBook, IncidentEvent
from agent.monitor.labeljoin import LabelJoin
from agent.monitor.monitor import ModelMonitor
from agent.monitor.state import restore_state, save_state
from agent.types import Label

log = logging.getLogger(__name__)

REQUESTS_DIR = "alarm-requests"
MONITOR_STATE_FILE = "monitor-state.npz"
LABELS_FILE = "labels.db"
STALE_REQUEST_S = 24 * 3600.0


def write_request(state_dir: Path, action: str, incident: str, model: str, by: str,
                  reason: str | None = None, until: float | None = None) -> Path:
    """An operator's request for the running agent (it applies them within a few seconds; a
    stopped agent at its next start). Written whole, then renamed: never read half-written."""
    folder = state_dir / REQUESTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"action": action, "incident": incident, "model": model, "by": by, "reason": reason,
           "until": until, "requested": time.time()}
    name = f"{time.time_ns()}-{uuid.uuid4().hex[:6]}"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(json.dumps(doc))
    final = folder / f"{name}.json"
    os.replace(tmp, final)
    return final


class ModelWatch:
    def __init__(self, model: LoadedModel, config: MonitoringConfig, state_dir: Path,
                 flood: FloodGuard | None = None, requests_dir: Path | None = None) -> None:
        """``state_dir``: this model's folder (its monitor state and label table);
        ``requests_dir``: where operators' requests arrive (shared by the models of a gateway,
        each takes those naming it)."""
        self.model = model
        self.config = config
        self.state_dir = state_dir
        self.state_path = state_dir / MONITOR_STATE_FILE
        self.requests = requests_dir or state_dir / REQUESTS_DIR
        manifest = model.bundle.manifest
        self.monitor = ModelMonitor(manifest)
        self.incidents = IncidentBook(model.name, model.version, model.bundle.sha256,
                                      flood or FloodGuard(config.max_notifications_per_10min))
        self.restored = restore_state(self.state_path, self.monitor, model.bundle.sha256, self.incidents)
        if self.restored:
            log.info("monitor state restored: %d samples, incident %s", self.monitor.samples,
                     self.incidents.current.id if self.incidents.current else "none")
        monitoring = (manifest.model_extra or {}).get("monitoring") or {}
        self.budget = describe(monitoring)
        if not self.monitor.budget_per_model:
            log.warning("%s: %s", model.bundle.label, self.budget)
        self.labels = LabelJoin(state_dir / LABELS_FILE, config.label_ttl_s, config.max_pending_labels,
                                config.label_match, config.label_time_offset_s,
                                config.label_tolerance_s, bundle=model.bundle.sha256)
        self._class_pos = {c: i for i, c in enumerate(model.classes)}
        self.unknown_label_values = 0
        self.non_finite_label_values = 0  # regression labels NaN or infinite: refused
        self.last_joined_id: str | None = None  # the sample the last label was matched to
        self.last_snapshot = time.monotonic()

    def on_batch(self, samples: SampleBatch, preds: PredictionBatch, out: RuntimeOutput) -> (
            list[IncidentEvent]):
        first = self.monitor.samples
        conf = out.scores.max(axis=1) if self.model.classes and out.scores.shape[1] > 1 else None
        events = self.monitor.update(samples, preds, conf)
        self.labels.add(preds, first)
        return self.incidents.apply(events) if events else []

    def on_label(self, label: Label) -> list[IncidentEvent]:
        self.last_joined_id = None
        truth = self._truth(label.value)
        if truth is None:
            return []
        joined = self.labels.join(label.sample_id, label.timestamp)
        if joined is None:
            return []
        self.last_joined_id = joined.sample_id
        events = self.monitor.on_labels(np.array([joined.index]), np.array([joined.predicted]),
                                        np.array([truth]), np.array([joined.score]))
        return self.incidents.apply(events) if events else []

    def _truth(self, value: Any) -> float | None:
        if not self.model.classes:
            try:
                truth = float(value)
            except (TypeError, ValueError, OverflowError):
                self.unknown_label_values += 1
                return None
            if not math.isfinite(truth):  # would poison every error sum it enters
                self.non_finite_label_values += 1
                if self.non_finite_label_values == 1 or self.non_finite_label_values % 1000 == 0:
                    log.warning("label value %r is not a finite number; refused (%d so far)",
                                value, self.non_finite_label_values)
                return None
            return truth
        key = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        if key not in self._class_pos:
            self.unknown_label_values += 1
            if self.unknown_label_values == 1 or self.unknown_label_values % 1000 == 0:
                log.warning("label value %r is not one of the model's classes %s (%d so far)",
                            value, self.model.classes, self.unknown_label_values)
            return None
        return float(self._class_pos[key])

    def flush(self) -> None:
        """On the outbox's flush schedule: pending predictions reach the label table."""
        self.labels.flush()

    def tick(self) -> list[IncidentEvent]:
        """Periodic work: expire labels and shelves, snapshot state, apply operators' requests."""
        self.labels.expire()
        now = time.time()
        events = self._requests(now) if self.requests.is_dir() else []
        events += self.incidents.expire(now)
        if events or time.monotonic() - self.last_snapshot >= self.config.snapshot_interval_s:
            self.snapshot()
        return events

    def _requests(self, now: float) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        for path in sorted(self.requests.glob("*.json")):
            try:
                doc = json.loads(path.read_text())
                mine = doc.get("model") == self.model.name
                stale = now - float(doc.get("requested") or 0) > STALE_REQUEST_S
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                log.warning("alarm request %s unreadable (%s); removed", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            if not mine:
                if stale:  # meant for a model no longer here
                    path.unlink(missing_ok=True)
                continue
            events += self._apply_request(doc, now)
            path.unlink(missing_ok=True)
        return events

    def _apply_request(self, doc: dict[str, Any], now: float) -> list[IncidentEvent]:
        action, incident = doc.get("action"), str(doc.get("incident") or "")
        by = str(doc.get("by") or "operator")
        if action == "ack":
            done = self.incidents.acknowledge(incident, by, now)
        elif action == "shelve":
            done = self.incidents.shelve(incident, float(doc.get("until") or now), by,
                                         str(doc.get("reason") or ""), now)
        elif action == "unshelve":
            done = self.incidents.unshelve(incident, by, now, f"unshelved by {by}")
        else:
            log.warning("alarm request with unknown action %r ignored", action)
            return []
        if not done:
            found = self.incidents.find(incident)
            log.warning("%s of incident %s by %s: %s", action, incident, by,
                        "it is closed already" if found else "no such open incident")
        else:
            log.info("incident %s: %s by %s", incident, action, by)
        return done

    def snapshot(self) -> None:
        save_state(self.state_path, self.monitor, self.model.bundle.sha256, self.incidents)
        self.last_snapshot = time.monotonic()

    def close(self) -> None:
        self.snapshot()
        self.labels.close()

    def figures(self) -> dict[str, Any]:
        metrics = self.monitor.metrics()
        metrics = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
        return {**metrics, "labels_join": self.labels.figures(), "alarms": self.monitor.book.active(),
                "incidents": self.incidents.figures(), "incident_state": self.incidents.worst(),
                "budget": self.budget, "budget_per_model": self.monitor.budget_per_model,
                "unknown_label_values": self.unknown_label_values,
                "non_finite_label_values": self.non_finite_label_values, "restored": self.restored}

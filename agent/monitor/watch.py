"""Model health in the running agent: the monitor of the active model version, the pending
label table, detector snapshots, and alarm acknowledgements. The app feeds it every inference
batch and every label; it returns the alarm events for the app to publish and store."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import MonitoringConfig
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.inference.model import LoadedModel
from agent.inference.runtimes import RuntimeOutput
from agent.monitor.alarms import MonitorEvent
from agent.monitor.labeljoin import LabelJoin
from agent.monitor.monitor import ModelMonitor
from agent.monitor.state import restore_state, save_state
from agent.types import Label

log = logging.getLogger(__name__)

ACK_FILE = "alarms-ack"


class ModelWatch:
    def __init__(self, model: LoadedModel, config: MonitoringConfig, state_dir: Path) -> None:
        self.model = model
        self.config = config
        self.state_path = state_dir / "monitor-state.npz"
        self.ack_path = state_dir / ACK_FILE
        self.monitor = ModelMonitor(model.bundle.manifest)
        self.restored = restore_state(self.state_path, self.monitor, model.bundle.sha256)
        if self.restored:
            log.info("monitor state restored: %d samples, alarms %s", self.monitor.samples,
                     self.monitor.book.worst())
        self.labels = LabelJoin(state_dir / "labels.db", config.label_ttl_s, config.max_pending_labels,
                                config.label_match, config.label_time_offset_s,
                                config.label_tolerance_s)
        self._class_pos = {c: i for i, c in enumerate(model.classes)}
        self.unknown_label_values = 0
        self.last_joined_id: str | None = None  # the sample the last label was matched to
        self.last_snapshot = time.monotonic()

    def on_batch(self, samples: SampleBatch, preds: PredictionBatch, out: RuntimeOutput) -> (
            list[MonitorEvent]):
        first = self.monitor.samples
        conf = out.scores.max(axis=1) if self.model.classes and out.scores.shape[1] > 1 else None
        events = self.monitor.update(samples, preds, conf)
        self.labels.add(preds, first)
        return events

    def on_label(self, label: Label) -> list[MonitorEvent]:
        self.last_joined_id = None
        truth = self._truth(label.value)
        if truth is None:
            return []
        joined = self.labels.join(label.sample_id, label.timestamp)
        if joined is None:
            return []
        self.last_joined_id = joined.sample_id
        return self.monitor.on_labels(np.array([joined.index]), np.array([joined.predicted]),
                                      np.array([truth]))

    def _truth(self, value: Any) -> float | None:
        if not self.model.classes:
            try:
                return float(value)
            except (TypeError, ValueError):
                self.unknown_label_values += 1
                return None
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

    def tick(self) -> list[MonitorEvent]:
        """Periodic work: expire labels, snapshot state, honour an operator's acknowledgement."""
        self.labels.expire()
        if time.monotonic() - self.last_snapshot >= self.config.snapshot_interval_s:
            self.snapshot()
        return self._acknowledged() if self.ack_path.exists() else []

    def _acknowledged(self) -> list[MonitorEvent]:
        try:
            who = self.ack_path.read_text().strip() or "operator"
            self.ack_path.unlink()
        except OSError:
            return []
        cleared = self.monitor.book.acknowledge()
        now = time.time()
        log.info("alarms acknowledged by %s: %d cleared", who, len(cleared))
        return [MonitorEvent(self.monitor.samples - 1, now, kind, feature, detector, "ok", 0.0, 0.0,
                             self.model.name, self.model.version, [f"acknowledged by {who}"])
                for kind, detector, feature in cleared]

    def snapshot(self) -> None:
        save_state(self.state_path, self.monitor, self.model.bundle.sha256)
        self.last_snapshot = time.monotonic()

    def close(self) -> None:
        self.snapshot()
        self.labels.close()

    def figures(self) -> dict[str, Any]:
        metrics = self.monitor.metrics()
        metrics = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
        return {**metrics, "labels_join": self.labels.figures(), "alarms": self.monitor.book.active(),
                "unknown_label_values": self.unknown_label_values, "restored": self.restored}

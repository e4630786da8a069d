"""Labelled samples for retraining at the hub: the inputs the model saw, its prediction and the
label that came back, within a budget per day. Hard examples (misclassified parts, parts seen
while a drift warning or alarm was up) may use the whole budget; ordinary ones only half, so a
day with a drift keeps what retraining needs most."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import numpy as np

from agent.config import TrainingDataConfig
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.models.comparison import class_key, truth_value

PENDING_LIMIT = 20_000


class TrainingSampler:
    def __init__(self, config: TrainingDataConfig) -> None:
        self.config = config
        self._pending: OrderedDict[str, tuple[float, list[float], str, str, str, Any]] = OrderedDict()
        self._day = int(time.time() // 86400)
        self.kept_today = 0
        self.kept = 0
        self.skipped = 0
        self.unknown_labels = 0
        self.out: list[dict[str, Any]] = []
        self._inputs: list[str] = []
        self._classes: list[str] = []

    def remember(self, samples: SampleBatch, predictions: PredictionBatch, inputs: list[str]) -> None:
        if not self.config.enabled:
            return
        decided = (predictions.label_idx if predictions.label_idx is not None else predictions.score)
        pending = self._pending
        xs = np.asarray(samples.x, dtype=np.float64).round(6).tolist()
        for sid, ts, row, d in zip(samples.ids, samples.timestamps.tolist(), xs,
                                   np.asarray(decided).tolist(), strict=True):
            pending[sid] = (ts, row, predictions.model_name, predictions.model_version,
                            predictions.bundle_sha256, d)
        while len(pending) > PENDING_LIMIT:
            pending.popitem(last=False)
        self._inputs = inputs
        self._classes = predictions.classes

    def labelled(self, sample_id: str, label: Any, drift_active: bool) -> bool:
        """A label arrived for sample_id: keep the sample if the budget allows. A label the model
        cannot learn from (none of its classes, or no finite number for a regressor) is counted
        in ``unknown_labels`` and never becomes a training sample."""
        if sample_id not in self._pending:
            return False
        if truth_value(self._classes, label) is None:
            self.unknown_labels += 1
            return False
        if self._classes:
            label = class_key(label)  # as the model spells its class: "1", not 1.0
        entry = self._pending.pop(sample_id)
        ts, row, model, version, sha, decided = entry
        predicted = (self._classes[int(decided)] if self._classes and 0 <= int(decided) < len(self._classes)
                     else decided)
        hard = (drift_active or str(predicted) != str(label)) if self._classes else drift_active
        day = int(time.time() // 86400)
        if day != self._day:
            self._day, self.kept_today = day, 0
        limit = self.config.daily_budget if hard else self.config.daily_budget // 2
        if self.kept_today >= limit:
            self.skipped += 1
            return False
        self.kept_today += 1
        self.kept += 1
        self.out.append({"id": sample_id, "ts": ts, "model": model, "inputs": self._inputs, "x": row,
                         "predicted": predicted, "label": label, "version": version,
                         "bundle_sha256": sha, "hard": hard})
        return True

    def take(self) -> list[dict[str, Any]]:
        out, self.out = self.out, []
        return out

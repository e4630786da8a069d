"""A classifier's performance on labelled outcomes, as the agent counts it: a confusion matrix
over the last ``window`` labelled parts (the rolling figures: per-class recall and precision,
balanced accuracy, expected cost per part from the bundle's cost matrix) and one since this
version was activated (what the hub's model card adds up, for this version only).

O(1) per label: a ring of (truth, prediction) codes and the counts they make, like RingMean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.models.bundle import Manifest
from agent.models.scoring import CostMatrix, classifier_scores, manifest_costs


class ClassPerformance:
    def __init__(self, costs: CostMatrix, window: int, version: str = "") -> None:
        self.costs = costs
        self.k = len(costs.classes)
        self.window = window
        self.version = version
        self._ring = np.full(window, -1, dtype=np.int64)
        self.seen = 0
        self.rolling = np.zeros(self.k * self.k, dtype=np.int64)
        self.total = np.zeros(self.k * self.k, dtype=np.int64)

    @classmethod
    def for_manifest(cls, manifest: Manifest, window: int) -> ClassPerformance | None:
        """None for a regressor (MAE/RMSE stay with the monitor)."""
        costs = manifest_costs(manifest)
        return None if costs is None else cls(costs, window, manifest.version)

    def update(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        """Labelled outcomes as class indices (codes outside the classes are ignored)."""
        t, p = np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
        keep = (t >= 0) & (t < self.k) & (p >= 0) & (p < self.k)
        codes = (t * self.k + p)[keep]
        self.total += np.bincount(codes, minlength=self.k * self.k)
        if len(codes) > self.window:  # only the newest window's worth can stay
            self.seen += len(codes) - self.window
            codes = codes[-self.window:]
        slots = (self.seen + np.arange(len(codes))) % self.window
        old = self._ring[slots]
        self.rolling -= np.bincount(old[old >= 0], minlength=self.k * self.k)
        self.rolling += np.bincount(codes, minlength=self.k * self.k)
        self._ring[slots] = codes
        self.seen += len(codes)

    def rolling_scores(self) -> dict[str, Any]:
        return classifier_scores(self.rolling.reshape(self.k, self.k), self.costs)

    def metrics(self) -> dict[str, Any]:
        """The figures the monitor reports next to rolling accuracy."""
        if not self.rolling.any() and not self.total.any():
            return {}
        rolling = self.rolling_scores()
        return {
            "rolling_balanced_accuracy": rolling["balanced_accuracy"],
            "rolling_cost_per_part": rolling["cost_per_part"],
            "rolling_per_class": {c: {k: v[k] for k in ("support", "recall", "precision")}
                                  for c, v in rolling["per_class"].items()},
            "rolling_labelled": rolling["n"],
            "since_activation": {"version": self.version, "labelled": int(self.total.sum()),
                                 "classes": list(self.costs.classes),
                                 "confusion": self.total.reshape(self.k, self.k).tolist(),
                                 "cost_missed_nok": self.costs.missed,
                                 "cost_false_nok": self.costs.false},
        }

    def state(self) -> dict[str, Any]:
        return {"ring": self._ring, "seen": self.seen, "rolling": self.rolling, "total": self.total}

    def restore(self, s: dict[str, Any]) -> None:
        if np.shape(s["rolling"]) != self.rolling.shape or np.shape(s["ring"]) != self._ring.shape:
            return  # a snapshot of another shape: start counting afresh
        self._ring[:] = s["ring"]
        self.seen = int(s["seen"])
        self.rolling[:] = s["rolling"]
        self.total[:] = s["total"]

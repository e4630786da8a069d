"""Two model versions on the same inputs: the incumbent and a candidate (a shadow, or a newly
activated version watched against the one it replaced). Predictions of both wait, bounded, for
their labels. A classifier pair is counted as (truth, incumbent's call, candidate's call), which
is all the paired cost test of ``agent.models.scoring`` needs: the watch rolls a candidate back,
and the hub rejects a shadow, when its expected cost per part is higher by more than the margin
and the test says the rise is real, the same rule as champion/challenger at the hub. Accuracy
is reported too, never decisive: a candidate that misses the NOK parts the incumbent catches is
worse even when it is right more often. Regressors are compared on MAE."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from typing import Any

import numpy as np

from agent.models import scoring
from agent.models.scoring import CostMatrix, PairedCost

PENDING_LIMIT = 20_000  # predictions waiting for a label; the oldest go first
LATENCY_WINDOW = 1_000  # inference batches kept for the p99 comparison


def class_key(value: Any) -> str:
    """A label as a class name: 1.0 (a JSON number) is the class "1"."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def truth_value(classes: list[str], value: Any) -> float | None:
    """A label as the model's class index (classifier) or number (regression); None if unusable
    (a NaN or an infinity would make every error sum NaN, and a rollback never decided)."""
    if not classes:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
        return number if math.isfinite(number) else None
    try:
        return float(classes.index(class_key(value)))
    except ValueError:
        return None


class Comparison:
    def __init__(self, classes: list[str], costs: CostMatrix | None = None) -> None:
        self.classes = classes
        self.kind = "classifier" if classes else "regression"
        # without the bundle's cost matrix every error costs the same (cost = error rate)
        self.costs = costs or (CostMatrix(tuple(classes), None, 1.0, 1.0) if classes else None)
        k = len(classes)
        self.counts = np.zeros((k, k, k), dtype=np.int64)  # truth, incumbent, candidate
        self._pending: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._latency: deque[tuple[float, float]] = deque(maxlen=LATENCY_WINDOW)
        self.compared = 0
        self.agreed = 0
        self.labelled = 0
        self.active_errors = 0.0
        self.candidate_errors = 0.0
        self.candidate_failures = 0

    def record(self, sample_ids: list[str], active: np.ndarray, candidate: np.ndarray,
               active_s: float, candidate_s: float) -> None:
        pending = self._pending
        for sid, a, c in zip(sample_ids, active.tolist(), candidate.tolist(), strict=True):
            pending[sid] = (a, c)
        while len(pending) > PENDING_LIMIT:
            pending.popitem(last=False)
        self.compared += len(sample_ids)
        if self.classes:
            self.agreed += int(np.count_nonzero(active == candidate))
        else:
            self.agreed += int(np.count_nonzero(np.isclose(active, candidate, rtol=1e-3)))
        self._latency.append((active_s, candidate_s))

    def on_label(self, sample_id: str, value: Any) -> bool:
        truth = truth_value(self.classes, value)
        pair = self._pending.pop(sample_id, None)
        if truth is None or pair is None:
            return False
        a, c = pair
        self.labelled += 1
        if self.classes:
            self.active_errors += float(a != truth)
            self.candidate_errors += float(c != truth)
            k = len(self.classes)
            if all(0 <= v < k for v in (truth, a, c)):
                self.counts[int(truth), int(a), int(c)] += 1
        else:
            self.active_errors += abs(a - truth)
            self.candidate_errors += abs(c - truth)
        return True

    def p99(self) -> tuple[float, float] | None:
        if not self._latency:
            return None
        lat = np.asarray(self._latency)
        return float(np.quantile(lat[:, 0], 0.99)), float(np.quantile(lat[:, 1], 0.99))

    @property
    def latency_batches(self) -> int:
        return len(self._latency)

    def paired(self, significance: float = 0.05) -> PairedCost | None:
        if self.costs is None:
            return None
        return scoring.paired_cost(self.counts, self.costs, significance)

    def candidate_worse(self, margin: float, significance: float = 0.05,
                        mae_margin: float | None = None) -> bool:
        """Classifier: expected cost per part above the incumbent's by more than ``margin``,
        and credibly so (the paired test at ``significance``). Regression: MAE above the
        incumbent's by more than the fraction ``mae_margin`` (``margin`` when not given)."""
        if not self.labelled:
            return False
        if self.costs is None:
            a, c = self.active_errors / self.labelled, self.candidate_errors / self.labelled
            return c > a * (1 + (margin if mae_margin is None else mae_margin))
        worse, _ = scoring.candidate_worse(self.counts, self.costs, margin, significance)
        return worse

    def figures(self, significance: float = 0.05) -> dict[str, Any]:
        n = self.labelled
        p99 = self.p99()
        out: dict[str, Any] = {
            "kind": self.kind, "compared": self.compared, "labelled": n,
            "agreement": round(self.agreed / self.compared, 4) if self.compared else None,
            "active_errors": self.active_errors, "candidate_errors": self.candidate_errors,
            "candidate_failures": self.candidate_failures,
            "p99_active_ms": round(p99[0] * 1e3, 3) if p99 else None,
            "p99_candidate_ms": round(p99[1] * 1e3, 3) if p99 else None,
        }
        if self.costs is not None:
            # the raw counts travel to the hub, which judges a shadow with its own cost policy
            out["classes"] = list(self.classes)
            out["paired_counts"] = self.counts.tolist()
            out["cost_missed_nok"], out["cost_false_nok"] = self.costs.missed, self.costs.false
            if n:
                sides = (("active", self.counts.sum(axis=2)), ("candidate", self.counts.sum(axis=1)))
                for who, conf in sides:
                    s = scoring.classifier_scores(conf, self.costs)
                    out[f"{who}_accuracy"] = s["accuracy"]
                    out[f"{who}_balanced_accuracy"] = s["balanced_accuracy"]
                    out[f"{who}_cost_per_part"] = s["cost_per_part"]
                    out[f"{who}_recall"] = {c: v["recall"] for c, v in s["per_class"].items()}
                test = self.paired(significance)
                out["paired"] = test.figures() if test else None
        elif n:
            out["active_mae"] = round(self.active_errors / n, 6)
            out["candidate_mae"] = round(self.candidate_errors / n, 6)
        return out

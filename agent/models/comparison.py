"""Two model versions on the same inputs: the incumbent and a candidate (a shadow, or a newly
activated version watched against the one it replaced). Predictions of both wait, bounded, for
their labels; the figures say which one was wrong more often and which one is slower."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from typing import Any

import numpy as np

PENDING_LIMIT = 20_000  # predictions waiting for a label; the oldest go first
LATENCY_WINDOW = 1_000  # inference batches kept for the p99 comparison


def truth_value(classes: list[str], value: Any) -> float | None:
    """A label as the model's class index (classifier) or number (regression); None if unusable."""
    if not classes:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    key = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    try:
        return float(classes.index(key))
    except ValueError:
        return None


class Comparison:
    def __init__(self, classes: list[str]) -> None:
        self.classes = classes
        self.kind = "classifier" if classes else "regression"
        self._pending: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._latency: deque[tuple[float, float]] = deque(maxlen=LATENCY_WINDOW)
        self.compared = 0
        self.agreed = 0
        self.labelled = 0
        self.active_errors = 0.0
        self.candidate_errors = 0.0
        self.candidate_failures = 0
        # discordant pairs (classifier): only the candidate wrong / only the incumbent wrong
        self.only_candidate_wrong = 0
        self.only_active_wrong = 0

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
            self.only_candidate_wrong += int(c != truth and a == truth)
            self.only_active_wrong += int(a != truth and c == truth)
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

    def candidate_worse(self, margin: float, significance: float = 1.0) -> bool:
        """Error rate above the incumbent's by more than margin (classifier), or MAE above it
        by more than the fraction margin (regression). For a classifier the difference must
        also be credible: a one-sided sign test on the parts where only one of the two was
        wrong (McNemar's exact test) at the given significance level."""
        if not self.labelled:
            return False
        a, c = self.active_errors / self.labelled, self.candidate_errors / self.labelled
        if not self.classes:
            return c > a * (1 + margin)
        return c > a + margin and self.sign_test_p() <= significance

    def sign_test_p(self) -> float:
        """P(at least this many 'only the candidate wrong' of the discordant parts | no difference)."""
        b, n = self.only_candidate_wrong, self.only_candidate_wrong + self.only_active_wrong
        if n == 0:
            return 1.0
        return float(sum(math.comb(n, k) for k in range(b, n + 1))) / float(2 ** n)

    def figures(self) -> dict[str, Any]:
        n = self.labelled
        p99 = self.p99()
        out: dict[str, Any] = {
            "kind": self.kind, "compared": self.compared, "labelled": n,
            "agreement": round(self.agreed / self.compared, 4) if self.compared else None,
            "active_errors": self.active_errors, "candidate_errors": self.candidate_errors,
            "candidate_failures": self.candidate_failures,
            "sign_test_p": round(self.sign_test_p(), 5) if self.classes else None,
            "p99_active_ms": round(p99[0] * 1e3, 3) if p99 else None,
            "p99_candidate_ms": round(p99[1] * 1e3, 3) if p99 else None,
        }
        if n and self.classes:
            out["active_accuracy"] = round(1 - self.active_errors / n, 4)
            out["candidate_accuracy"] = round(1 - self.candidate_errors / n, 4)
        elif n:
            out["active_mae"] = round(self.active_errors / n, 6)
            out["candidate_mae"] = round(self.candidate_errors / n, 6)
        return out

"""How the product scores a model, in one place: the bundle builder's holdout metrics, the
agent's rolling figures and its watch, the hub's shadow and canary judges, champion/challenger,
retrain triggers, model cards and the demo all call these functions.

Classifiers are judged by figures a trivial model cannot ace: recall and precision of every
class (with Wilson 95% intervals), balanced accuracy (mean recall over the classes present) and
the expected cost per part from the plant's cost matrix (``cost_missed_nok``: a bad part called
good; ``cost_false_nok``: a good part called bad). Accuracy is kept as one figure among them.
Regressors keep MAE and RMSE.

Two versions on the same labelled parts are compared with a paired test on their per-part
costs: a percentile bootstrap of the mean cost difference, resampled from the counts of
(truth, first prediction, second prediction) with a fixed seed, so the same counts always give
the same verdict. McNemar's exact test would only count errors, which is what lets a model that
misses expensive parts win on cheap ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_COST_MISSED = 10.0
DEFAULT_COST_FALSE = 1.0
BOOTSTRAP_RESAMPLES = 4000
Z95 = 1.959964


class CostError(ValueError):
    """A cost or floor setting that cannot be used; the message names the setting."""


def check_costs(missed: Any, false: Any, missed_name: str = "cost_missed_nok",
                false_name: str = "cost_false_nok") -> tuple[float, float]:
    """Both costs as floats, or CostError naming the setting and the fix."""
    out = []
    for name, value in ((missed_name, missed), (false_name, false)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CostError(f"{name}={value!r}: use a number >= 0 (the cost of one such part)")
        if value < 0:
            raise CostError(f"{name}={value!r}: a cost cannot be negative; use a number >= 0")
        out.append(float(value))
    if out[0] == 0 and out[1] == 0:
        raise CostError(f"{missed_name} and {false_name} are both 0: every model would cost "
                        "nothing; give at least one a positive cost")
    return out[0], out[1]


def check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise CostError(f"{name}={value!r}: use a number between 0 and 1")
    return float(value)


@dataclass(frozen=True)
class CostMatrix:
    """What a wrong call costs, per part, rows truth, columns prediction. Missing a part of the
    monitored (positive) class costs ``missed``; calling another part positive costs ``false``;
    confusing two other classes costs ``false`` too (no such class is the one to catch)."""

    classes: tuple[str, ...]
    positive: str | None
    missed: float = DEFAULT_COST_MISSED
    false: float = DEFAULT_COST_FALSE

    def matrix(self) -> np.ndarray:
        k = len(self.classes)
        m = np.full((k, k), self.false) - np.eye(k) * self.false
        if self.positive in self.classes:
            p = self.classes.index(self.positive)
            m[p, :] = self.missed
            m[p, p] = 0.0
        return m

    def to_manifest(self) -> dict[str, Any]:
        return {"positive_class": self.positive, "cost_missed_nok": self.missed,
                "cost_false_nok": self.false, "classes": list(self.classes),
                "matrix": self.matrix().tolist(), "unit": "cost per part"}

    @classmethod
    def from_manifest(cls, classes: Sequence[str], positive: str | None,
                      doc: dict[str, Any] | None) -> CostMatrix:
        """From a bundle's ``costs`` section; the defaults (10 and 1) for older bundles."""
        doc = doc or {}
        missed, false = check_costs(doc.get("cost_missed_nok", DEFAULT_COST_MISSED),
                                    doc.get("cost_false_nok", DEFAULT_COST_FALSE))
        return cls(tuple(classes), doc.get("positive_class", positive), missed, false)


def manifest_costs(manifest: Any) -> CostMatrix | None:
    """The cost matrix of a bundle's manifest (``costs``; defaults for bundles made before it
    was recorded); None for a regressor."""
    out = manifest.output
    if out.kind != "classifier" or len(out.classes) < 2:
        return None
    return CostMatrix.from_manifest(out.classes, out.positive_class,
                                    (manifest.model_extra or {}).get("costs"))


def confusion(truth: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """k x k counts, rows truth, columns prediction, from class indices."""
    t, p = np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def wilson(successes: float, n: float) -> tuple[float, float] | None:
    """Wilson score 95% interval of a proportion; None without trials."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), digits)


def classifier_scores(conf: np.ndarray, costs: CostMatrix) -> dict[str, Any]:
    """Every figure of a confusion matrix: accuracy, balanced accuracy, cost per part, and per
    class support, recall and precision with their intervals. The positive class's precision,
    recall and F1 are repeated at the top level (the names older readers know)."""
    conf = np.asarray(conf, dtype=np.float64)
    n = float(conf.sum())
    support = conf.sum(axis=1)
    called = conf.sum(axis=0)
    diag = np.diag(conf)
    per_class: dict[str, Any] = {}
    recalls = []
    for i, name in enumerate(costs.classes):
        recall = diag[i] / support[i] if support[i] else None
        precision = diag[i] / called[i] if called[i] else None
        if recall is not None:
            recalls.append(recall)
        rci, pci = wilson(diag[i], support[i]), wilson(diag[i], called[i])
        per_class[name] = {"support": int(support[i]), "recall": _r(recall), "precision": _r(precision),
                           "recall_ci": [_r(c) for c in rci] if rci else None,
                           "precision_ci": [_r(c) for c in pci] if pci else None}
    out: dict[str, Any] = {
        "n": int(n),
        "accuracy": _r(diag.sum() / n) if n else None,
        "balanced_accuracy": _r(float(np.mean(recalls))) if recalls else None,
        "cost_per_part": _r(float((conf * costs.matrix()).sum() / n)) if n else None,
        "per_class": per_class,
        "positive_class": costs.positive,
        "cost_missed_nok": costs.missed, "cost_false_nok": costs.false,
    }
    if costs.positive in per_class:
        pos = per_class[costs.positive]
        r, p = pos["recall"], pos["precision"]
        out["recall"], out["precision"] = r, p
        out["f1"] = _r(2 * r * p / (r + p)) if r is not None and p is not None and r + p else (
            0.0 if r is not None else None)
    return out


def scores_from_labels(truth: Sequence[str], predicted: Sequence[str], costs: CostMatrix) -> (
        dict[str, Any]):
    """``classifier_scores`` from label strings; labels outside the classes are errors of the
    caller, not silently dropped."""
    index = {c: i for i, c in enumerate(costs.classes)}
    unknown = sorted({v for v in [*truth, *predicted] if v not in index})
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {list(costs.classes)}")
    k = len(costs.classes)
    return classifier_scores(confusion(np.array([index[v] for v in truth], dtype=np.int64),
                                       np.array([index[v] for v in predicted], dtype=np.int64), k),
                             costs)


def regression_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    err = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    if not len(err):
        return {"n": 0, "mae": None, "rmse": None}
    return {"n": len(err), "mae": _r(float(np.mean(np.abs(err))), 6),
            "rmse": _r(float(np.sqrt(np.mean(err**2))), 6)}


def recall_floor_failures(scores: dict[str, Any], floor: float, credible: bool = False) -> list[str]:
    """Classes whose recall is below ``floor``: by the point estimate, or (``credible``) only
    when even the upper end of its 95% interval is below it (few labelled parts)."""
    failures = []
    for name, c in (scores.get("per_class") or {}).items():
        if c.get("recall") is None:
            continue
        value = c["recall_ci"][1] if credible and c.get("recall_ci") else c["recall"]
        if value < floor:
            failures.append(f"{name} recall {c['recall']:.2f} below the floor {floor:g}"
                            + (f" (95% interval up to {value:.2f})" if credible else "")
                            + f" on {c['support']} {name} parts")
    return failures


# -- two versions on the same parts -------------------------------------------------------------
def paired_counts(truth: np.ndarray, first: np.ndarray, second: np.ndarray, k: int) -> np.ndarray:
    """k x k x k counts of (truth, first version's call, second version's call)."""
    t, a, b = (np.asarray(v, dtype=np.int64) for v in (truth, first, second))
    return np.bincount((t * k + a) * k + b, minlength=k**3).reshape(k, k, k)


@dataclass(frozen=True)
class PairedCost:
    """The second version's cost per part minus the first's, on the same parts."""

    n: int
    first_cost: float
    second_cost: float
    difference: float  # second - first; negative: the second is cheaper
    low: float  # one-sided 95% bounds of the difference (percentile bootstrap)
    high: float
    p_lower: float  # bootstrap share of resamples where the second is not cheaper
    p_higher: float  # ... where the second is not dearer
    method: str = "paired percentile bootstrap of the per-part cost difference"

    def figures(self) -> dict[str, Any]:
        return {"n": self.n, "first_cost_per_part": _r(self.first_cost),
                "second_cost_per_part": _r(self.second_cost), "difference": _r(self.difference),
                "difference_95": [_r(self.low), _r(self.high)], "p_lower": _r(self.p_lower),
                "p_higher": _r(self.p_higher), "test": self.method,
                "resamples": BOOTSTRAP_RESAMPLES}


def paired_cost(counts: np.ndarray, costs: CostMatrix, significance: float = 0.05,
                seed: int = 0) -> PairedCost | None:
    """Compare two versions from their paired counts; None without labelled parts."""
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        return None
    m = costs.matrix()
    k = len(costs.classes)
    t, a, b = np.indices((k, k, k)).reshape(3, -1)
    diff_cell = m[t, b] - m[t, a]
    flat = counts.reshape(-1).astype(np.float64)
    first = float((flat * m[t, a]).sum() / n)
    second = float((flat * m[t, b]).sum() / n)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, flat / n, size=BOOTSTRAP_RESAMPLES)
    means = draws @ diff_cell / n
    low, high = float(np.quantile(means, significance)), float(np.quantile(means, 1 - significance))
    return PairedCost(n, first, second, second - first, low, high,
                      p_lower=float(np.mean(means >= 0)), p_higher=float(np.mean(means <= 0)))


def challenger_verdict(counts: np.ndarray, costs: CostMatrix, margin: float, floor: float,
                       significance: float = 0.05) -> tuple[bool, str, dict[str, Any]]:
    """Champion/challenger on the same holdout (first = champion, second = challenger):
    published only if the challenger's expected cost is lower by more than ``margin`` with the
    paired test at ``significance``, and no class recall of the challenger is below ``floor``.
    Returns (publish, reason, figures)."""
    k = len(costs.classes)
    counts = np.asarray(counts).reshape(k, k, k)
    champ = classifier_scores(counts.sum(axis=2), costs)
    chall = classifier_scores(counts.sum(axis=1), costs)
    test = paired_cost(counts, costs, significance)
    figures: dict[str, Any] = {"champion": champ, "challenger": chall,
                               "paired": test.figures() if test else None,
                               "margin": margin, "min_class_recall": floor}
    if test is None:
        return False, "no labelled holdout parts to compare on", figures
    floor_failures = recall_floor_failures(chall, floor)
    what = (f"challenger cost {test.second_cost:.3f} vs champion {test.first_cost:.3f} per part "
            f"(difference {test.difference:+.3f}, 95% bound {test.high:+.3f}, p={test.p_lower:.3f}, "
            f"{test.method}; accuracy {chall['accuracy']} vs {champ['accuracy']}, balanced accuracy "
            f"{chall['balanced_accuracy']} vs {champ['balanced_accuracy']})")
    if floor_failures:
        return False, "rejected: " + "; ".join(floor_failures) + f"; {what}", figures
    if test.difference >= -margin:
        return False, f"rejected: not cheaper by the margin {margin:g}: {what}", figures
    if test.p_lower > significance:
        return False, f"rejected: the difference is within noise (p > {significance:g}): {what}", figures
    return True, f"published: cheaper by more than {margin:g} per part: {what}", figures


def candidate_worse(counts: np.ndarray, costs: CostMatrix, margin: float,
                    significance: float = 0.05) -> tuple[bool, PairedCost | None]:
    """The watch's and the shadow's rule (first = the version in service, second = the
    candidate): worse when its expected cost is higher by more than ``margin`` and the paired
    test says the rise is real at ``significance``."""
    test = paired_cost(counts, costs, significance)
    if test is None:
        return False, None
    return test.difference > margin and test.p_higher <= significance, test

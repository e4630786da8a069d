"""What a model's monitor reads out: its detectors' statistics and rolling performance, for
status, reports and replay, and the parts a snapshot keeps (agent.monitor.monitor holds the
detectors and feeds them)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from agent.monitor.monitor import ModelMonitor


def metrics(monitor: ModelMonitor) -> dict[str, Any]:
    """The figures of a monitor (status, reports, replay): its detectors' statistics and the
    rolling performance."""
    out: dict[str, Any] = {
        "samples": monitor.samples, "labels": monitor.labels,
        "psi": dict(zip(monitor.names, np.round(monitor.psi.last[:-1], 5).tolist(), strict=True)),
        "cusum": dict(zip(monitor.names, np.round(monitor.cusum.score[: len(monitor.names)], 3).tolist(),
                          strict=True)),
        "prediction_psi": round(float(monitor.psi.last[len(monitor.names)]), 5),
        "prediction_cusum": round(float(monitor.cusum.score[len(monitor.names)]), 3),
        "alarm_state": monitor.book.worst(),
    }
    if monitor.has_scale:
        k = len(monitor.names)
        score = np.round(monitor.cusum.score[monitor.scale_at:], 3).tolist()
        out["resid_cusum"] = dict(zip(monitor.names, score[:k], strict=True))
        out["scale_cusum"] = dict(zip(monitor.names, score[k:2 * k], strict=True))
        if len(monitor.tie_cols):  # the inputs the others predict: their tie to them
            out["tie_cusum"] = dict(zip([monitor.names[j] for j in monitor.tie_cols], score[2 * k:],
                                        strict=True))
    if monitor.pca is not None:
        out["pca_cusum"] = round(float(monitor.cusum.score[len(monitor.names) + 1]), 3)
    if monitor.pooled is not None:
        out["pooled_cusum"] = round(monitor.cusum.pooled_score, 3)
    if monitor.innovation is not None:
        out["innovation_glr"] = round(monitor.innovation.score, 3)
    replaced = dict(zip(monitor.names, monitor.finite.replaced.tolist(), strict=True))
    replaced["score"] = int(monitor.finite_score.replaced[0])
    replaced["confidence"] = int(monitor.finite_conf.replaced[0])
    out["non_finite_values"] = {name: n for name, n in replaced.items() if n}  # agent.monitor.finite
    if monitor.constant is not None:  # the inputs off the one value they had in the reference
        out["off_reference_value"] = [n for n, up in zip(monitor.constant_names, monitor.constant.up.tolist(),
                                                         strict=True) if up]
    if monitor.categorical is not None:
        out["js"] = dict(zip(monitor.cat_names, np.round(monitor.categorical.last, 5).tolist(), strict=True))
        out["unseen_category_rate"] = dict(zip(
            monitor.cat_names, np.round(monitor.categorical.unseen_rate, 5).tolist(), strict=True))
    if monitor.cbpe is not None:
        out["cbpe_expected_accuracy"] = None if math.isnan(monitor.cbpe_expected) else round(
            monitor.cbpe_expected, 4)
        out["holdout_accuracy"] = monitor.cbpe.get("holdout_accuracy")
    if monitor.correct.count:
        out["rolling_accuracy"] = round(monitor.correct.mean, 4)
        if monitor.positive is not None:
            tp, fp, fn = monitor.tp.total, monitor.fp.total, monitor.fn.total
            out["rolling_f1"] = round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else None
    if monitor.performance is not None:
        out.update(monitor.performance.metrics())
    if monitor.abs_err.count:
        out["rolling_mae"] = round(monitor.abs_err.mean, 6)
        out["rolling_rmse"] = round(math.sqrt(monitor.sq_err.mean), 6)
    return out


def parts(monitor: ModelMonitor) -> dict[str, Any]:
    """The parts of a monitor whose state a snapshot keeps (agent.monitor.state)."""
    parts: dict[str, Any] = {"psi": monitor.psi, "cusum": monitor.cusum,
                             "confidence": monitor.confidence, "correct": monitor.correct,
                             "abs_err": monitor.abs_err, "sq_err": monitor.sq_err, "tp": monitor.tp,
                             "fp": monitor.fp, "fn": monitor.fn}
    if hasattr(monitor, "label_cusum"):
        parts["label_cusum"] = monitor.label_cusum
        parts["label_rows"] = _Array(monitor._label_rows)
    if monitor.performance is not None:
        parts["performance"] = monitor.performance
    if monitor.categorical is not None:
        parts["categorical"] = monitor.categorical
    if monitor.constant is not None:
        parts["constant"] = monitor.constant
    if monitor.innovation is not None:
        parts["innovation"] = monitor.innovation
    return parts


class _Array:
    """A plain array as a snapshot part."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def state(self) -> dict[str, Any]:
        return {"values": self.values}

    def restore(self, s: dict[str, Any]) -> None:
        self.values[:] = s["values"]

"""Conditions of the CUSUM bank's detections: each input's mean CUSUM, the PCA's reconstruction
error, each input's prediction error (its decorrelated mean, ``resid_cusum``, and its scale,
``scale_cusum``) and the pooled statistic; what each event names and ranks. The monitor
(agent.monitor.monitor) orders the transitions of a batch and applies them in sample order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from agent.monitor.alarms import TOP, MonitorEvent, top_streams
from agent.monitor.cusum import Detection
from agent.monitor.pooled import monitor_events

if TYPE_CHECKING:
    from agent.monitor.monitor import ModelMonitor

OUTLIER = 4.0  # a mean CUSUM counts a value beyond 4 of its sample's standard deviations as 4


def cusum_event(monitor: ModelMonitor, det: Detection, first: int, z: np.ndarray | None) -> (
        list[MonitorEvent]):
    col = det.column
    kind, name = monitor.cusum_kinds[col], monitor.cusum_columns[col]
    detector = "pca_cusum" if kind == "multivariate_drift" else "cusum"
    if det.level == "quiet":
        return monitor._normal((kind, detector, name), det.index, float(monitor.cusum.h_warn[col]))
    thr = float(monitor.cusum.h[col] if det.level == "alarm" else monitor.cusum.h_warn[col])
    if kind == "multivariate_drift" and z is not None:
        row = min(len(z) - 1, max(0, det.index - first))
        resid = z[row] - (z[row] @ monitor._pca_comps.T) @ monitor._pca_comps
        top = [monitor.names[i] for i in np.argsort(-(resid**2))[:TOP]]
    else:
        at = monitor.scale_at
        top = top_streams(scores_at(monitor, det)[:at], monitor.cusum_kinds[:at],
                          monitor.cusum_columns[:at], kind, name)
    start = det.start_index if det.start_index >= 0 else None
    return monitor._raise(monitor._event(kind, detector, name, det.level, det.score, thr,
                                         det.index, top, start))


def scale_event(monitor: ModelMonitor, det: Detection) -> list[MonitorEvent]:
    """A prediction-error column's detection: its mean (resid_cusum), its scale (scale_cusum)
    or its tie to the others (tie_cusum, agent.monitor.tie)."""
    k = len(monitor.names)
    col = det.column
    local = col - monitor.scale_at
    group = min(2, local // k)  # resid, scale, tie
    names = list(monitor.names) if group < 2 else [monitor.names[j] for j in monitor.tie_cols]
    name = names[local - group * k]
    detector = ("resid_cusum", "scale_cusum", "tie_cusum")[group]
    if det.level == "quiet":
        return monitor._normal(("data_drift", detector, name), det.index, float(monitor.cusum.h_warn[col]))
    thr = float(monitor.cusum.h[col] if det.level == "alarm" else monitor.cusum.h_warn[col])
    scores = scores_at(monitor, det)[monitor.scale_at + group * k:]
    part = scores[:len(names)]
    top = top_streams(part, ["data_drift"] * len(names), list(names), "data_drift", name)
    start = det.start_index if det.start_index >= 0 else None
    return monitor._raise(monitor._event("data_drift", detector, name, det.level,
                                         det.score, thr, det.index, top, start))


def pooled_event(monitor: ModelMonitor, det: Detection) -> list[MonitorEvent]:
    return monitor_events(monitor, [det])


def scores_at(monitor: ModelMonitor, det: Detection) -> np.ndarray:
    """The bank's column scores at the detection's sample (as fed sample by sample), which
    rank the streams an event names."""
    return monitor.cusum.score if det.column_scores is None else det.column_scores


def resid_columns(sc: dict[str, Any]) -> tuple[list[float], ...]:
    """Mean, spread, clip and levels of the prediction errors' mean CUSUMs (bundles before the
    pooled section)."""
    sd = np.array(sc["resid_cusum_std"])
    return (sc["resid_mean"], sc["resid_cusum_std"], (OUTLIER / sd).tolist(), sc["resid_h_alarm"],
            sc["resid_h_warn"])

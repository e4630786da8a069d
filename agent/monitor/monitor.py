"""All detectors of one model version, fed together with each inference batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.batches import PredictionBatch, SampleBatch
from agent.bundle import Manifest
from agent.monitor.alarms import AlarmBook, MonitorEvent
from agent.monitor.calibrate import pad_profiles, reconstruction_log_error
from agent.monitor.detectors import Cusum, Detection, RingMean, WindowPSI

HYSTERESIS = 0.8  # a PSI warning clears below 80% of its threshold
TOP = 3


class ModelMonitor:
    def __init__(self, manifest: Manifest) -> None:
        mon: dict[str, Any] = dict((manifest.model_extra or {}).get("monitoring") or {})
        if not mon:
            raise ValueError(f"bundle {manifest.name} {manifest.version} has no monitoring "
                             "section: rebuild it with this version's bundle builder")
        self.model, self.version = manifest.name, manifest.version
        self.names = [i.name for i in manifest.inputs]
        self.window, self.every = int(mon["window"]), int(mon["every"])
        feats = manifest.profile["features"]
        edges, props = pad_profiles([feats[n] for n in self.names])
        d = mon["data"]
        self.data_psi = WindowPSI(edges, props, self.window, self.every)
        self.psi_warn, self.psi_alarm = np.array(d["psi_warn"]), np.array(d["psi_alarm"])
        self.data_cusum = Cusum(np.array(d["cusum_mean"]), np.array(d["cusum_std"]), d["cusum_k"],
                                np.array(d["cusum_h_alarm"]), h_warn=np.array(d["cusum_h_warn"]))
        p = mon["prediction"]
        pe, pp = pad_profiles([manifest.profile["prediction"]])
        self.pred_psi = WindowPSI(pe, pp, self.window, self.every)
        self.pred_warn, self.pred_alarm = np.array(p["psi_warn"]), np.array(p["psi_alarm"])
        self.pred_cusum = Cusum(np.array(p["cusum_mean"]), np.array(p["cusum_std"]), p["cusum_k"],
                                np.array(p["cusum_h_alarm"]), h_warn=np.array(p["cusum_h_warn"]))
        self.pca: dict[str, Any] | None = mon.get("multivariate")
        if self.pca is not None:
            self._pca_mean = np.array(self.pca["mean"])
            self._pca_scale = np.array(self.pca["scale"])
            self._pca_comps = np.array(self.pca["components"])
            self.pca_cusum = Cusum(np.array([self.pca["error_mean"]]), np.array([self.pca["error_std"]]),
                                   self.pca["cusum_k"], self.pca["h_alarm"], one_sided=True,
                                   h_warn=self.pca["h_warn"])
        self.cbpe: dict[str, Any] | None = mon.get("cbpe")
        self.confidence = RingMean(self.window)
        lab = mon.get("labels") or {}
        self.classifier = manifest.output.kind == "classifier"
        self.label_spec = lab
        if self.classifier and "error_rate" in lab:
            p0, p1 = lab["error_rate"], lab["designed_rate"]
            self._llr = (math.log(p1 / p0), math.log((1 - p1) / (1 - p0)))
            self.label_cusum = Cusum(np.zeros(1), np.ones(1), 0.0, lab["h_alarm"], one_sided=True,
                                     h_warn=lab["h_warn"])
        self.correct = RingMean(self.window)
        self.abs_err, self.sq_err = RingMean(self.window), RingMean(self.window)
        positive = manifest.output.positive_class
        self.positive = manifest.output.classes.index(positive) if (
            positive in manifest.output.classes) else None
        self.tp, self.fp, self.fn = RingMean(self.window), RingMean(self.window), RingMean(self.window)
        self.book = AlarmBook()
        self.samples = 0
        self.labels = 0
        self._ts = np.zeros(self.window * 8)  # timestamps of recent samples, for start times
        self._ts_seen = 0
        self.cbpe_expected = float("nan")

    # -- feeding ---------------------------------------------------------------------------
    def update(self, batch: SampleBatch, preds: PredictionBatch,
               confidence: np.ndarray | None = None) -> list[MonitorEvent]:
        n = len(batch)
        if not n:
            return []
        first = self.samples
        slots = (first + np.arange(n)) % len(self._ts)
        self._ts[slots] = batch.timestamps
        self._ts_seen = first + n
        x = batch.x.astype(np.float64)
        events: list[MonitorEvent] = []
        for index, psi in self.data_psi.update(x):
            events += self._levels("data_drift", "psi", psi, self.psi_warn, self.psi_alarm, index,
                                   self.names)
        for det in self.data_cusum.update(x):
            events += self._cusum_event("data_drift", det, self.data_cusum, self.names)
        self._clear_cusum("data_drift", self.data_cusum, self.names)
        score = preds.score[:, None].astype(np.float64)
        for index, psi in self.pred_psi.update(score):
            events += self._levels("prediction_drift", "psi", psi, self.pred_warn, self.pred_alarm,
                                   index, ["score"])
        for det in self.pred_cusum.update(score):
            events += self._cusum_event("prediction_drift", det, self.pred_cusum, ["score"])
        self._clear_cusum("prediction_drift", self.pred_cusum, ["score"])
        if self.pca is not None:
            z = (x - self._pca_mean) / self._pca_scale
            err = reconstruction_log_error(z, self._pca_comps)
            for det in self.pca_cusum.update(err[:, None]):
                row = det.index - first
                resid = z[row] - (z[row] @ self._pca_comps.T) @ self._pca_comps
                top = [self.names[i] for i in np.argsort(-(resid**2))[:TOP]]
                events += self._cusum_event("multivariate_drift", det, self.pca_cusum, [None],
                                            detector="pca_cusum", top=top)
            self._clear_cusum("multivariate_drift", self.pca_cusum, [None], detector="pca_cusum")
        if self.cbpe is not None and confidence is not None:
            events += self._cbpe(confidence, first)
        self.samples += n
        return events

    def _cbpe(self, confidence: np.ndarray, first: int) -> list[MonitorEvent]:
        """Expected accuracy from the model's own confidence: a label-free early warning."""
        assert self.cbpe is not None
        events: list[MonitorEvent] = []
        pos = 0
        while pos < len(confidence):
            step = min(self.every - ((first + pos) % self.every), len(confidence) - pos)
            self.confidence.update(confidence[pos:pos + step])
            pos += step
            if (first + pos) % self.every or self.confidence.seen < self.window:
                continue
            self.cbpe_expected = self.confidence.mean
            drop = self.cbpe["reference_expected_accuracy"] - self.cbpe_expected
            events += self._levels("performance", "cbpe", np.array([drop]),
                                   np.array([self.cbpe["warn_drop"]]),
                                   np.array([self.cbpe["alarm_drop"]]), first + pos - 1, [None])
        return events

    def on_labels(self, indices: np.ndarray, predicted: np.ndarray, truth: np.ndarray) -> (
            list[MonitorEvent]):
        """Labelled outcomes: ``indices`` are the sample indices the labels belong to;
        ``predicted``/``truth`` are class indices (classifier) or values (regression)."""
        if not len(indices):
            return []
        self.labels += len(indices)
        events: list[MonitorEvent] = []
        if self.classifier:
            correct = (predicted == truth).astype(np.float64)
            self.correct.update(correct)
            if self.positive is not None:
                pp, tp_ = predicted == self.positive, truth == self.positive
                self.tp.update((pp & tp_).astype(np.float64))
                self.fp.update((pp & ~tp_).astype(np.float64))
                self.fn.update((~pp & tp_).astype(np.float64))
            if hasattr(self, "label_cusum"):
                llr = np.where(correct == 0, self._llr[0], self._llr[1])[:, None]
                base = self.label_cusum.seen
                for det in self.label_cusum.update(llr):
                    mapped = Detection(int(indices[det.index - base]), 0, det.score,
                                       int(indices[max(0, det.start_index - base)])
                                       if det.start_index >= base else -1, det.level)
                    events += self._cusum_event("performance", mapped, self.label_cusum, [None],
                                                detector="error_cusum")
                self._clear_cusum("performance", self.label_cusum, [None], detector="error_cusum")
        else:
            err = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
            self.abs_err.update(np.abs(err))
            self.sq_err.update(err**2)
        return events

    # -- events ----------------------------------------------------------------------------
    def _event(self, kind: str, detector: str, feature: str | None, level: str, score: float,
               threshold: float, index: int, top: list[str], start: int | None) -> MonitorEvent:
        return MonitorEvent(index, self._time(index), kind, feature, detector, level, score,
                            threshold, self.model, self.version, top, start,
                            self._time(start) if start is not None and start >= 0 else None)

    def _time(self, index: int) -> float:
        if index < 0 or index >= self._ts_seen or index < self._ts_seen - len(self._ts):
            return float("nan")  # older than the timestamps kept
        return float(self._ts[index % len(self._ts)])

    def _levels(self, kind: str, detector: str, scores: np.ndarray, warn: np.ndarray,
                alarm: np.ndarray, index: int, names: Sequence[str | None]) -> list[MonitorEvent]:
        events: list[MonitorEvent] = []
        order = np.argsort(-scores)
        top = [str(names[i]) for i in order[:TOP] if names[i] is not None]
        for col in np.flatnonzero(scores > warn).tolist():
            level = "alarm" if scores[col] > alarm[col] else "warning"
            thr = float(alarm[col] if level == "alarm" else warn[col])
            e = self._event(kind, detector, names[col], level, float(scores[col]), thr, index, top,
                            max(0, index - self.window + 1))
            raised = self.book.raise_level(e)
            if raised is not None:
                events.append(raised)
        for col in np.flatnonzero(scores < warn * HYSTERESIS).tolist():
            e = self._event(kind, detector, names[col], "ok", float(scores[col]), float(warn[col]),
                            index, [], None)
            cleared = self.book.clear(kind, detector, names[col], e)
            if cleared is not None:
                events.append(cleared)
        return events

    def _cusum_event(self, kind: str, det: Detection, cusum: Cusum, names: Sequence[str | None],
                     detector: str = "cusum", top: list[str] | None = None) -> list[MonitorEvent]:
        thr = float(cusum.h[det.column] if det.level == "alarm" else cusum.h_warn[det.column])
        if top is None:
            order = np.argsort(-cusum.score)
            top = [str(names[i]) for i in order[:TOP] if names[i] is not None]
            if names[det.column] is not None and names[det.column] not in top:
                top = [str(names[det.column]), *top[: TOP - 1]]
        start = det.start_index if det.start_index >= 0 else None
        e = self._event(kind, detector, names[det.column], det.level, det.score, thr, det.index,
                        top, start)
        raised = self.book.raise_level(e)
        return [raised] if raised is not None else []

    def _clear_cusum(self, kind: str, cusum: Cusum, names: Sequence[str | None],
                     detector: str = "cusum") -> None:
        for col in np.flatnonzero(~cusum.warned).tolist():
            key = (kind, detector, names[col])
            if self.book.states.get(key) == "warning":
                del self.book.states[key]

    # -- reading -----------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "samples": self.samples, "labels": self.labels,
            "psi": dict(zip(self.names, np.round(self.data_psi.last, 5).tolist(), strict=True)),
            "cusum": dict(zip(self.names, np.round(self.data_cusum.score, 3).tolist(), strict=True)),
            "prediction_psi": round(float(self.pred_psi.last[0]), 5),
            "alarm_state": self.book.worst(),
        }
        if self.pca is not None:
            out["pca_cusum"] = round(float(self.pca_cusum.score[0]), 3)
        if self.cbpe is not None:
            out["cbpe_expected_accuracy"] = None if math.isnan(self.cbpe_expected) else round(
                self.cbpe_expected, 4)
            out["holdout_accuracy"] = self.cbpe.get("holdout_accuracy")
        if self.correct.count:
            out["rolling_accuracy"] = round(self.correct.mean, 4)
            if self.positive is not None:
                tp, fp, fn = self.tp.total, self.fp.total, self.fn.total
                out["rolling_f1"] = round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else None
        if self.abs_err.count:
            out["rolling_mae"] = round(self.abs_err.mean, 6)
            out["rolling_rmse"] = round(math.sqrt(self.sq_err.mean), 6)
        return out

    def parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {"data_psi": self.data_psi, "data_cusum": self.data_cusum,
                                 "pred_psi": self.pred_psi, "pred_cusum": self.pred_cusum,
                                 "confidence": self.confidence, "correct": self.correct,
                                 "abs_err": self.abs_err, "sq_err": self.sq_err, "tp": self.tp,
                                 "fp": self.fp, "fn": self.fn}
        if self.pca is not None:
            parts["pca_cusum"] = self.pca_cusum
        if hasattr(self, "label_cusum"):
            parts["label_cusum"] = self.label_cusum
        return parts

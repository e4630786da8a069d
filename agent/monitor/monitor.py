"""All detectors of one model version, fed together with each inference batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.inference.batches import PredictionBatch, SampleBatch
from agent.models.bundle import Manifest
from agent.monitor import readout
from agent.monitor.alarms import TOP, AlarmBook, Key, MonitorEvent
from agent.monitor.bank_events import OUTLIER, cusum_event, pooled_event, resid_columns, scale_event
from agent.monitor.calibrate import pad_profiles, prediction_errors, reconstruction_log_error, score_transform
from agent.monitor.cbpe import drops as cbpe_drops
from agent.monitor.constant import ConstantWatch, constant_events
from agent.monitor.cusum import POOLED
from agent.monitor.detectors import Cusum, Detection, RingMean, WindowCategorical, WindowPSI, pad_proportions
from agent.monitor.finite import FiniteGuard, MissingCells, psi_whole_rows
from agent.monitor.innovation import InnovationGLR
from agent.monitor.innovation import monitor_events as innovation_events
from agent.monitor.labelcal import outcome_llr
from agent.monitor.pca import same_standardisation
from agent.monitor.performance import ClassPerformance
from agent.monitor.pooled import pool_of, transform
from agent.monitor.scores import table_arrays
from agent.monitor.tie import differences as tie_differences

# the order in which a batch of one sample applies its detectors' transitions (ties of one index)
_JS, _CONSTANT, _PSI, _CUSUM, _SCALE, _POOLED, _INNOVATION, _CBPE = range(8)
_PHASE = {"warning": 0, "quiet": 1, "alarm": 2}  # a bank's detections of one sample, in its order
HYSTERESIS = 0.8  # a window detector's condition ends below 80% of its warning level


class ModelMonitor:
    """One PSI ring buffer and one CUSUM bank hold every stream side by side: the features,
    the model's score, and (CUSUM only) the PCA reconstruction error; a second bank holds the
    scale CUSUM of every numeric feature. A batch of any size then costs a fixed few dozen
    numpy calls, whatever the number of features.

    ``update`` and ``on_labels`` return condition changes (agent.monitor.alarms), in sample
    order; the incident book turns them into incidents and notifications."""

    def __init__(self, manifest: Manifest, quiet: int | None = None) -> None:
        mon: dict[str, Any] = dict((manifest.model_extra or {}).get("monitoring") or {})
        if not mon:
            raise ValueError(f"bundle {manifest.name} {manifest.version} has no monitoring "
                             "section: rebuild it with this version's bundle builder")
        self.manifest = manifest
        self.model, self.version = manifest.name, manifest.version
        self.budget: dict[str, Any] = dict(mon.get("budget") or {})
        self.budget_per_model = self.budget.get("unit") == "per_model"
        all_names = [i.name for i in manifest.inputs]
        self.window, self.every = int(mon["window"]), int(mon["every"])
        self.quiet = self.window if quiet is None else quiet  # off-delay of a condition
        feats = manifest.profile["features"]
        d, p = mon["data"], mon["prediction"]
        # numeric inputs go to PSI, CUSUM and PCA; categorical ones to category counts
        self.numeric = np.array(d.get("columns", range(len(all_names))), dtype=np.int64)
        self.names = [all_names[i] for i in self.numeric]
        k = len(self.names)
        cat = mon.get("categorical")
        self.categorical: WindowCategorical | None = None
        if cat is not None:
            self.cat_cols = np.array(cat["columns"], dtype=np.int64)
            self.cat_names: list[str | None] = [all_names[i] for i in self.cat_cols]
            self.categorical = WindowCategorical([np.array(c) for c in cat["categories"]],
                                                 pad_proportions(cat["proportions"]), self.window, self.every)
            self.js_warn, self.js_alarm = np.array(cat["js_warn"]), np.array(cat["js_alarm"])
        const = mon.get("constant")  # inputs with one value in every reference row
        self.constant = ConstantWatch(const, self.quiet) if const else None
        self.constant_names = [all_names[i] for i in const["columns"]] if const else []
        self.transform = p.get("transform", "none")
        self._score_table = table_arrays(p.get("normal_scores"))
        edges, props = pad_profiles([*(feats[n] for n in self.names), manifest.profile["prediction"]])
        self.psi = WindowPSI(edges, props, self.window, self.every)
        self.psi_warn = np.array(d["psi_warn"] + p["psi_warn"])
        self.psi_alarm = np.array(d["psi_alarm"] + p["psi_alarm"])
        # per PSI / CUSUM column: which kind of drift it reports, and under which name
        self.kinds: list[str] = ["data_drift"] * k + ["prediction_drift"]
        self.columns: list[str | None] = [*self.names, "score"]
        self.pca: dict[str, Any] | None = mon.get("multivariate")
        mean = d["cusum_mean"] + p["cusum_mean"]
        std = d["cusum_std"] + p["cusum_std"]
        h = d["cusum_h_alarm"] + p["cusum_h_alarm"]
        h_warn = d["cusum_h_warn"] + p["cusum_h_warn"]
        one_sided = [False] * (k + 1)
        self.cusum_kinds, self.cusum_columns = list(self.kinds), list(self.columns)
        if self.pca is not None:
            self._pca_mean = np.array(self.pca["mean"])
            self._pca_scale = np.array(self.pca["scale"])
            self._pca_comps = np.array(self.pca["components"])
            mean, std = [*mean, self.pca["error_mean"]], [*std, self.pca["error_std"]]
            h, h_warn = [*h, self.pca["h_alarm"]], [*h_warn, self.pca["h_warn"]]
            one_sided.append(True)  # only a growing error means broken correlations
            self.cusum_kinds.append("multivariate_drift")
            self.cusum_columns.append(None)
        ref_k = [d["cusum_k"]] * len(mean)
        # in the CUSUM's (long-run) standard deviations; the score's normal scores are bounded
        clip = [math.inf] * len(mean)
        # the prediction errors of every numeric stream in the same bank: their mean (two-sided,
        # resid_cusum) and their squares (one-sided, scale_cusum); bundles of the per-stream era
        # have no scale section
        self.scale_spec: dict[str, Any] | None = mon.get("scale")
        self.has_scale = self.scale_spec is not None
        self.scale_at = len(mean)  # first prediction-error column of the bank
        self._prev: np.ndarray | None = None
        if self.scale_spec is not None:
            sc = self.scale_spec
            self._sc_mean, self._sc_std = np.array(sc["mean"]), np.array(sc["std"])
            self._sc_coef, self._sc_resid = np.array(sc["coef"]), np.array(sc["resid_std"])
            self._sc_cap = float(sc.get("cap", math.inf))  # bundles before the cap clip nothing
            # the residual columns: each stream decorrelated from the others (the pooled
            # section), or in bundles before it the mean of its prediction errors
            pk = mon.get("pooled")
            rs = resid_columns(sc) if pk is None else (
                transform(pk)[1].tolist(), [1.0] * k, pk["clip"], pk["stream_h_alarm"], pk["stream_h_warn"])
            mean, std = [*mean, *rs[0], *[0.0] * k], [*std, *rs[1], *[1.0] * k]
            ref_k = [*ref_k, *[d["cusum_k"]] * k, *[sc["k"]] * k]
            clip[:k] = (OUTLIER * self._sc_std / np.array(d["cusum_std"])).tolist()
            clip += [*rs[2], *[math.inf] * k]
            h, h_warn = [*h, *rs[3], *sc["h_alarm"]], [*h_warn, *rs[4], *sc["h_warn"]]
            one_sided = [*one_sided, *[False] * k, *[True] * k]
            # names for the metrics only (a prediction error of a stream is not the stream)
            self.cusum_kinds += ["data_drift"] * (2 * k)
            self.cusum_columns += [f"{n}:resid" for n in self.names] + [f"{n}:scale" for n in self.names]
        # the tie CUSUMs of the inputs the others predict, after the scale columns (one-sided,
        # their increments carry their own drift: k = 0)
        self.tie: dict[str, Any] | None = mon.get("tie") if self.has_scale else None
        self.tie_cols = np.array(self.tie["columns"] if self.tie else [], dtype=np.int64)
        if self.tie is not None and len(self.tie_cols):
            w, sigma = len(self.tie_cols), np.array(self.tie["sigma"])  # (all inputs: slices, no copies)
            self._tie_take = slice(None) if np.array_equal(self.tie_cols, np.arange(k)) else self.tie_cols
            self._tie = (np.array(self.tie["phi"]) / sigma, 1.0 / sigma)  # (the bank halves and shifts)
            mean, std = [*mean, *(-2.0 * np.array(self.tie["log_ratio"])).tolist()], [*std, *[2.0] * w]
            ref_k, clip = [*ref_k, *[0.0] * w], [*clip, *[math.inf] * w]
            h, h_warn = [*h, *self.tie["h_alarm"]], [*h_warn, *self.tie["h_warn"]]
            one_sided += [True] * w
            self.cusum_kinds += ["data_drift"] * w
            self.cusum_columns += [f"{self.names[j]}:tie" for j in self.tie_cols]
        # the pooled mean CUSUM over the residual columns (bundles before it have none)
        self.pooled: dict[str, Any] | None = mon.get("pooled") if self.has_scale else None
        if self.pooled is not None:
            self._pooled_m, self._pooled_c = transform(self.pooled)
        self.cusum = Cusum(np.array(mean), np.array(std), np.array(ref_k), np.array(h),
                           np.array(one_sided), np.array(h_warn), quiet=self.quiet, clip=np.array(clip),
                           pool=None if self.pooled is None else pool_of(self.pooled, self.scale_at, k, 0))
        self._z_is_u = same_standardisation(self.pca, self.scale_spec)  # (then one pass for both)
        spec = mon.get("innovation")  # the innovation GLR (bundles before it have none)
        self.innovation = InnovationGLR(spec, self.quiet) if spec is not None else None
        self.cbpe: dict[str, Any] | None = mon.get("cbpe")
        if self.cbpe is not None:
            self._cbpe_levels = (np.array([self.cbpe["warn_drop"]]), np.array([self.cbpe["alarm_drop"]]))
        self.confidence = RingMean(self.window)
        lab = mon.get("labels") or {}
        self.classifier = manifest.output.kind == "classifier"
        self._platt: tuple[float, float, float] | None = None
        if self.classifier and lab.get("kind") == "outcome_lr":
            a, b = lab["platt"]
            self._platt = (float(a), float(b), float(lab["flip"]))
        elif self.classifier and "error_rate" in lab:
            p0, p1 = lab["error_rate"], lab["designed_rate"]
            self._llr = (math.log(p1 / p0), math.log((1 - p1) / (1 - p0)))
        if self.classifier and ("error_rate" in lab or self._platt is not None):
            self.label_cusum = Cusum(np.zeros(1), np.ones(1), 0.0, lab["h_alarm"], one_sided=True,
                                     h_warn=lab["h_warn"], quiet=self.quiet)
        self.correct = RingMean(self.window)
        self._label_rows = np.full(self.window * 8, -1, dtype=np.int64)  # label n -> sample index
        self.abs_err, self.sq_err = RingMean(self.window), RingMean(self.window)
        positive = manifest.output.positive_class
        self.positive = manifest.output.classes.index(positive) if (
            positive in manifest.output.classes) else None
        self.tp, self.fp, self.fn = RingMean(self.window), RingMean(self.window), RingMean(self.window)
        self.performance = ClassPerformance.for_manifest(manifest, self.window)  # per class, cost
        self.book = AlarmBook()
        self.samples = self.labels = 0
        self._ts = np.zeros(self.window * 8)  # timestamps of recent samples, for start times
        self._ts_seen = 0
        self._batch_first = 0  # the batch being applied (update), its first sample and times
        self._batch_ts: np.ndarray | None = None
        self.cbpe_expected = float("nan")
        self.finite = FiniteGuard(np.array([feats[n]["mean"] for n in self.names]))  # NaN reaches no detector
        self.finite_score = FiniteGuard(np.array([manifest.profile["prediction"]["mean"]]))
        self.finite_conf = FiniteGuard(np.array([1.0]))
        self.missing = MissingCells(k, self.scale_at + (k if self.pooled is not None else 0))

    # -- feeding ---------------------------------------------------------------------------
    def update(self, batch: SampleBatch, preds: PredictionBatch,
               confidence: np.ndarray | None = None) -> list[MonitorEvent]:
        n = len(batch)
        if not n:
            return []
        first = self.samples
        x_all = batch.x.astype(np.float64)
        x = x_all[:, self.numeric] if len(self.numeric) != x_all.shape[1] else x_all
        score, ok_score = self.finite_score.column(preds.score)  # (ok: None when all finite)
        if confidence is not None:
            confidence = self.finite_conf.column(confidence)[0]
        # every detector's transitions of the batch, applied to the condition book below in
        # sample order: (index, detector, phase, column, how to apply, with what)
        found: list[tuple[int, int, int, int, Any, tuple[Any, ...]]] = []
        if self.categorical is not None:
            for index, js in self.categorical.update(x_all[:, self.cat_cols]):
                found.append((index, _JS, 0, 0, self._levels,
                              ("js", js, index, self.js_warn, self.js_alarm,
                               ["data_drift"] * len(self.cat_cols), self.cat_names)))
        if self.constant is not None:
            found += [(t.index, _CONSTANT, 0, t.column, constant_events, (self, [t]))
                      for t in self.constant.update(x_all, first)]
        ok_x = self.finite.clean(x)  # after the category and setpoint watches: NaN is off there
        for index, psi in psi_whole_rows(self.psi, np.column_stack([x, score]), ok_x, ok_score, first):
            found.append((index, _PSI, 0, 0, self._levels, ("psi", psi, index)))
        # every CUSUM stream side by side in one array, filled in place
        k = len(self.names)
        bank = np.empty((n, len(self.cusum.mean)))
        bank[:, :k] = x
        bank[:, k] = score_transform(score, self.transform, self._score_table)
        u = (x - self._sc_mean) / self._sc_std if self.has_scale else None
        z = None if self.pca is None else u if self._z_is_u else (x - self._pca_mean) / self._pca_scale
        if z is not None:
            bank[:, k + 1] = reconstruction_log_error(z, self._pca_comps)
        if u is not None:
            e = prediction_errors(u, self._prev, self._sc_coef)
            e /= self._sc_resid
            at = self.scale_at
            if self.pooled is None:
                bank[:, at:at + k] = e
            else:
                bank[:, at:at + k] = x @ self._pooled_m  # minus pooled_c: the bank's mean
            sq = bank[:, at + k:at + 2 * k]
            np.minimum(np.multiply(e, e, out=sq), self._sc_cap, out=sq)
            if len(self.tie_cols):
                cols, prev = self._tie_take, None if self._prev is None else self._prev[self._tie_take]
                tie_differences(sq[:, cols], u[:, cols], prev, *self._tie, self._sc_cap, bank[:, at + 2 * k:])
            self._prev = u[-1].copy()
        missing = self.missing.mask(ok_x, ok_score, bank.shape)
        for d in self.cusum.update(bank, missing):
            if d.column == POOLED:
                found.append((d.index, _POOLED, _PHASE[d.level], 0, pooled_event, (self, d)))
            elif d.column < self.scale_at:
                found.append((d.index, _CUSUM, _PHASE[d.level], d.column, cusum_event, (self, d, first, z)))
            else:
                found.append((d.index, _SCALE, _PHASE[d.level], d.column, scale_event, (self, d)))
        if self.innovation is not None:
            complete = None if ok_x is None else np.asarray(ok_x.all(axis=1))
            found += [(d.index, _INNOVATION, _PHASE[d.level], 0, innovation_events, (self, d))
                      for d in self.innovation.update(x, complete)]
        if self.cbpe is not None and confidence is not None:
            found += [(index, _CBPE, 0, 0, self._cbpe_event, (drop, index))
                      for index, drop in self._cbpe(confidence, first)]
        # A condition's transitions must reach the book in the order of their samples, as if
        # fed one sample at a time: a detector's return to normal before its next warning in
        # the same batch, not after it (else the warning is lost). Ties in the order a batch of
        # one sample gives: by detector, then warning, return to normal, alarm, then column.
        found.sort(key=lambda f: f[:4])  # (stable: a detector's own order breaks other ties)
        self._batch_first, self._batch_ts = first, batch.timestamps
        events: list[MonitorEvent] = []
        for *_, apply, args in found:
            events += apply(*args)
        self._batch_ts = None
        head = first % len(self._ts)  # (a run without a wrap is a slice: no index arrays)
        slots = slice(head, head + n) if head + n <= len(self._ts) else (first + np.arange(n)) % len(self._ts)
        self._ts[slots] = batch.timestamps
        self._ts_seen = first + n
        self.samples += n
        return events

    def _cbpe(self, confidence: np.ndarray, first: int) -> list[tuple[int, float]]:
        assert self.cbpe is not None
        out, expected = cbpe_drops(self.confidence, confidence, first, self.every, self.window,
                                   self.cbpe["reference_expected_accuracy"])
        self.cbpe_expected = self.cbpe_expected if expected is None else expected
        return out

    def _cbpe_event(self, drop: float, index: int) -> list[MonitorEvent]:
        if drop > self._cbpe_levels[0][0] * HYSTERESIS or self.book.states:  # else nothing to do
            return self._levels("cbpe", np.array([drop]), index, *self._cbpe_levels, ["performance"], [None])
        return []

    def on_labels(self, indices: np.ndarray, predicted: np.ndarray, truth: np.ndarray,
                  scores: np.ndarray | None = None) -> list[MonitorEvent]:
        """Labelled outcomes: ``indices`` are the sample indices the labels belong to;
        ``predicted``/``truth`` are class indices (classifier) or values (regression);
        ``scores`` the monitored scores those predictions had (a binary classifier's
        positive-class probability, which its label CUSUM weighs the outcomes by)."""
        if not len(indices):
            return []
        self.labels += len(indices)
        events: list[MonitorEvent] = []
        if self.classifier:
            correct = (predicted == truth).astype(np.float64)
            self.correct.update(correct)
            if self.performance is not None:
                self.performance.update(truth, predicted)
            if self.positive is not None:
                pp, tp_ = predicted == self.positive, truth == self.positive
                self.tp.update((pp & tp_).astype(np.float64))
                self.fp.update((pp & ~tp_).astype(np.float64))
                self.fn.update((~pp & tp_).astype(np.float64))
            if hasattr(self, "label_cusum"):
                if self._platt is not None:
                    if scores is None:
                        return events  # no probabilities to weigh the outcomes by
                    keep = np.isfinite(scores)  # labels of predictions stored without a score
                    indices, truth, scores = indices[keep], truth[keep], scores[keep]
                    if not len(indices):
                        return events
                    llr = outcome_llr(scores, truth == self.positive, *self._platt)[:, None]
                else:
                    llr = np.where(correct == 0, self._llr[0], self._llr[1])[:, None]
                base = self.label_cusum.seen
                ring = self._label_rows
                ring[(base + np.arange(len(indices))) % len(ring)] = indices
                for det in self.label_cusum.update(llr):
                    start = -1
                    if 0 <= det.start_index and base + len(indices) - det.start_index <= len(ring):
                        start = int(ring[det.start_index % len(ring)])
                    mapped = Detection(int(indices[det.index - base]), 0, det.score, start, det.level)
                    events += self._label_event(mapped)
        else:
            err = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
            err = err[np.isfinite(err)]  # a NaN would stay in the ring's running sum for good
            self.abs_err.update(np.abs(err))
            self.sq_err.update(err**2)
        return events

    # -- events ----------------------------------------------------------------------------
    def _event(self, kind: str, detector: str, feature: str | None, level: str, score: float,
               threshold: float, index: int, top: list[str], start: int | None) -> MonitorEvent:
        now = index if self._batch_ts is not None else None  # (a batch's event: at its sample)
        return MonitorEvent(index, self._time(index, now), kind, feature, detector, level, score,
                            threshold, self.model, self.version, top, start,
                            self._time(start, now) if start is not None and start >= 0 else None)

    def _time(self, index: int, now: int | None = None) -> float:
        """The time of sample ``index`` as known at sample ``now`` (default: the latest seen):
        the ring keeps the last len(_ts) of them. While a batch is applied, ``now`` is the
        event's own sample and the batch's times are read from the batch (the ring takes them
        after), so what is known does not depend on the batch size."""
        latest = self._ts_seen - 1 if now is None else now
        if index < 0 or index > latest or index <= latest - len(self._ts):
            return float("nan")  # older than the timestamps kept
        if self._batch_ts is not None and index >= self._batch_first:
            return float(self._batch_ts[index - self._batch_first])
        return float(self._ts[index % len(self._ts)])

    def _raise(self, e: MonitorEvent) -> list[MonitorEvent]:
        raised = self.book.raise_level(e)
        return [raised] if raised is not None else []

    def _normal(self, key: Key, index: int, threshold: float) -> list[MonitorEvent]:
        """The condition ``key`` ends: its detector is back to normal."""
        if key not in self.book.states:
            return []
        e = self._event(key[0], key[1], key[2], "ok", 0.0, threshold, index, [], None)
        cleared = self.book.clear(key, e)
        return [cleared] if cleared is not None else []

    def _levels(self, detector: str, scores: np.ndarray, index: int,
                warn: np.ndarray | None = None, alarm: np.ndarray | None = None,
                kinds: Sequence[str] | None = None, names: Sequence[str | None] | None = None) -> (
            list[MonitorEvent]):
        """Window scores against two levels; a condition ends below HYSTERESIS x its warning."""
        warn = self.psi_warn if warn is None else warn
        alarm = self.psi_alarm if alarm is None else alarm
        kinds = self.kinds if kinds is None else kinds
        names = self.columns if names is None else names
        events: list[MonitorEvent] = []
        over = np.flatnonzero(scores > warn)
        for col in over.tolist():
            level = "alarm" if scores[col] > alarm[col] else "warning"
            thr = float(alarm[col] if level == "alarm" else warn[col])
            same = [i for i in range(len(names)) if kinds[i] == kinds[col] and names[i] is not None]
            top = [str(names[i]) for i in sorted(same, key=lambda i: -scores[i])[:TOP]]
            events += self._raise(self._event(kinds[col], detector, names[col], level,
                                              float(scores[col]), thr, index, top,
                                              max(0, index - self.window + 1)))
        if self.book.states:  # ending only concerns conditions that are up now
            for col, name in enumerate(names):
                if scores[col] < warn[col] * HYSTERESIS:
                    events += self._normal((kinds[col], detector, name), index, float(warn[col]))
        return events

    def _label_event(self, det: Detection) -> list[MonitorEvent]:
        key: Key = ("performance", "error_cusum", None)
        if det.level == "quiet":
            return self._normal(key, det.index, float(self.label_cusum.h_warn[0]))
        thr = float(self.label_cusum.h[0] if det.level == "alarm" else self.label_cusum.h_warn[0])
        start = det.start_index if det.start_index >= 0 else None
        return self._raise(self._event("performance", "error_cusum", None, det.level, det.score,
                                       thr, det.index, [], start))

    # -- reading -----------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        return readout.metrics(self)

    def parts(self) -> dict[str, Any]:
        return readout.parts(self)

"""Detector thresholds from the model's false-alarm budget, calibrated on data it never fitted.

Input references (bins, means, spreads, correlations) may use every row: they do not depend on
the model. Whatever depends on the model's outputs (the score's reference for prediction drift,
CBPE's expected accuracy, the label CUSUM's error rate) comes from held-out rows only: on the
rows a model was fitted on it is more confident and more often right than it will ever be on
the line, and a reference taken there makes a false alarm on fresh data certain.

The budget (agent.monitor.budget) is split across the detectors; each detector's share sets its
threshold through its false-alarm law (agent.monitor.laws), corrected for the autocorrelation
the data show; then the reference rows are replayed through the detectors and any threshold
they would cross is raised (they contain no drift by definition).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agent.monitor import budget as budgets
from agent.monitor import innovation
from agent.monitor.budget import Budget
from agent.monitor.constant import constant_columns, constant_section
from agent.monitor.detectors import Cusum, WindowPSI
from agent.monitor.labelcal import label_thresholds
from agent.monitor.laws import (
    ar1,
    chi2_quantile,
    cusum_h,
    long_run_inflation,
    slowest,
    window_alpha,
    window_mean_z,
)
from agent.monitor.pca import pca_section, reconstruction_log_error
from agent.monitor.pooled import pooled_section
from agent.monitor.replaycheck import allowed_alarms, fired_too_often
from agent.monitor.scale import SCALE_CAP, prediction_errors, prediction_fit, scale_section
from agent.monitor.scores import cross_fitted, normal_scores_table, score_transform
from agent.monitor.tie import tie_section, tie_thresholds

__all__ = ["SCALE_CAP", "Budget", "calibrate", "pad_profiles", "prediction_errors",
           "reconstruction_log_error", "score_transform"]

# CBPE: the reference mean's error bounded for 99% of bundles (one-sided normal quantile)
REFERENCE_BOUND = 2.33


def psi_threshold(rate_per_week: float, budget: Budget, bins: np.ndarray, n_ref: int,
                  infl: np.ndarray) -> np.ndarray:
    """PSI above which a no-drift window appears ``rate_per_week`` times a week: under no
    drift PSI / (1/W + 1/N_ref) is about chi-square with (bins-1) degrees of freedom."""
    alpha = window_alpha(rate_per_week, budget.samples_per_week, budget.every)
    scale = (1.0 / budget.window + 1.0 / max(1, n_ref)) * infl
    return np.array([chi2_quantile(1 - alpha, max(1, int(b) - 1)) for b in bins]) * scale


def pad_profiles(profiles: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature edges and proportions into rectangular arrays (+inf / 0 padding)."""
    width = max(len(p["edges"]) for p in profiles)
    edges = np.full((len(profiles), width), np.inf)
    props = np.zeros((len(profiles), width + 1))
    for i, p in enumerate(profiles):
        e = p["edges"]
        edges[i, :len(e)] = e
        props[i, :len(e) + 1] = p["proportions"]  # underflow, inner bins, overflow at len(e)
    return edges, props


def calibrate(x: np.ndarray, profiles: list[dict[str, Any]], score: np.ndarray,
              score_profile: dict[str, Any], confidence: np.ndarray | None,
              holdout: dict[str, Any], budget: Budget,
              categorical: list[bool] | None = None,
              source: dict[str, Any] | None = None,
              error_bits: np.ndarray | None = None,
              outcomes: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Thresholds for every detector of a model, as the manifest's ``monitoring`` section.

    ``x``: inputs, all reference rows in time order. ``score``, ``confidence``, ``holdout``
    (metrics with ``n``), ``error_bits`` and ``outcomes`` (a binary classifier's positive-class
    probabilities and whether each row was positive): the model on held-out rows only."""
    x = x.astype(np.float32).astype(np.float64)  # the values the line's float32 samples can take
    cat = np.asarray(categorical if categorical is not None else [False] * x.shape[1], dtype=bool)
    numeric = np.flatnonzero(~cat)
    still = constant_columns(x, numeric)  # one value throughout: no spread to measure drift in
    numeric = numeric[~still]
    x_num = x[:, numeric]
    k = x_num.shape[1]
    labels = "accuracy" in holdout
    mean, std = x_num.mean(axis=0), x_num.std(axis=0)
    fit = prediction_fit(x_num, mean, std)  # the scale, residual and tie CUSUMs' predictions
    tie, tie_llr = tie_section(fit, SCALE_CAP)
    ties = len(tie["columns"])
    # the innovation GLR's VAR is fitted on the rows the model fitted, its law on the held-out
    # rows (the last len(score) of x)
    glr = innovation.possible(k, len(x), len(score))
    plan = budgets.split(k, int(cat.sum()), k >= 2, confidence is not None, labels, ties, glr)
    shares = plan["per_stream"]
    streams = {d: n for d, n in (("psi", k), ("cusum", k), ("resid_cusum", k), ("scale_cusum", k),
                                 ("tie_cusum", ties),
                                 ("js", int(cat.sum())), ("pca_cusum", int(k >= 2)),
                                 ("pooled_cusum", int(k >= 2)), ("innovation_glr", int(glr)),
                                 ("prediction_psi", 1), ("prediction_cusum", 1),
                                 ("cbpe", int(confidence is not None)), ("error_cusum", int(labels)))
               if n}
    monitoring: dict[str, Any] = {
        "budget": budget.as_dict(), "window": budget.window, "every": budget.every,
        "budget_split": {"unit": budgets.UNIT, "rule": budgets.SPLIT_RULE,
                         "shares": plan["shares"], "input_streams": plan["input_streams"],
                         "streams": streams,
                         "alarms_per_week_per_stream": {d: round(shares[d] * budget.alarms_per_week, 8)
                                                        for d in streams}},
        "calibration": {"inputs": f"{len(x)} rows", "outputs": f"{len(score)} held-out rows",
                        **(source or {})},
    }
    infl = long_run_inflation(x_num, safe=True)
    # the model's outputs are measured on the held-out rows only, too few to show their own
    # time scale: their long-run spreads use at least the bandwidth of the inputs' (all rows)
    span = slowest(x_num)
    num_profiles = [profiles[i] for i in numeric]
    monitoring["data"] = _stream_thresholds(x_num, x_num, num_profiles, mean, std, infl, budget,
                                            shares["psi"], shares["cusum"])
    monitoring["data"]["columns"] = numeric.tolist()
    monitoring["scale"] = scale_section(x_num, mean, fit, budget, shares["scale_cusum"],
                                        shares["resid_cusum"])
    if ties:
        warn_rate, alarm_rate = budget.rates(shares["tie_cusum"])
        monitoring["tie"] = tie_thresholds(tie, tie_llr, warn_rate, alarm_rate, budget.samples_per_week,
                                           allowed_alarms(len(tie_llr), alarm_rate, budget.samples_per_week))
    # scores are skewed (a classifier's most of all): the CUSUM watches their normal scores,
    # the held-out distribution mapped onto N(0, 1), which its law assumes
    table = normal_scores_table(score)
    s_cusum = score_transform(score, "normal_scores", table)
    s_mean, s_std, s_infl = cross_fitted(score, span)
    monitoring["prediction"] = _stream_thresholds(
        score[:, None], s_cusum[:, None], [score_profile], np.array([s_mean]), np.array([s_std]),
        np.array([s_infl]), budget, shares["prediction_psi"], shares["prediction_cusum"])
    monitoring["prediction"]["transform"] = "normal_scores"
    monitoring["prediction"]["normal_scores"] = table
    if still.any():
        monitoring["constant"] = constant_section(x, np.flatnonzero(~cat)[still])
    if cat.any():
        monitoring["categorical"] = {"columns": np.flatnonzero(cat).tolist(),
                                     **_categorical(x[:, cat], [p for p, c in zip(profiles, cat, strict=True)
                                                                 if c], budget, shares["js"])}
    if k >= 2:
        pca = pca_section(x_num, mean, std, budget, shares["pca_cusum"])
        if pca is not None:
            monitoring["multivariate"] = {**pca, "columns": numeric.tolist()}
        else:  # the inputs vary in one direction only: no residual to watch, its share unused
            for part in ("streams", "alarms_per_week_per_stream"):
                monitoring["budget_split"][part].pop("pca_cusum")
        # the residual mean CUSUMs then watch each stream decorrelated from the others, pooled
        monitoring["pooled"] = pooled_section(x_num, mean, std, budget.cusum_k,
                                              budget.rates(shares["resid_cusum"]),
                                              budget.rates(shares["pooled_cusum"]), budget.samples_per_week)
        for key in ("resid_mean", "resid_cusum_std", "resid_h_warn", "resid_h_alarm"):
            monitoring["scale"].pop(key)
    if glr:
        monitoring["innovation"] = innovation.innovation_section(
            x_num, len(score), budget.rates(shares["innovation_glr"]), budget.samples_per_week)
    if confidence is not None:
        monitoring["cbpe"] = _cbpe(confidence, holdout, budget, shares["cbpe"])
    if labels:
        monitoring["labels"] = label_thresholds(holdout, error_bits, outcomes, budget,
                                                shares["error_cusum"], span)
    elif "mae" in holdout:
        monitoring["labels"] = {"mae": holdout["mae"], "rmse": holdout.get("rmse")}
    monitoring.update(autocorrelation=ar1(x_num).round(4).tolist(), long_run_inflation=infl.round(3).tolist())
    return monitoring


def _stream_thresholds(x: np.ndarray, x_cusum: np.ndarray, profiles: list[dict[str, Any]],
                       mean: np.ndarray, std: np.ndarray, infl: np.ndarray, budget: Budget,
                       psi_share: float, cusum_share: float) -> dict[str, Any]:
    k = x.shape[1]
    bins = np.array([len(p["edges"]) + 1 for p in profiles])
    warn_rate, alarm_rate = budget.rates(psi_share)
    psi_warn = psi_threshold(warn_rate, budget, bins, len(x), infl)
    psi_alarm = psi_threshold(alarm_rate, budget, bins, len(x), infl)
    eff_std = std * np.sqrt(infl)
    warn_rate, alarm_rate = budget.rates(cusum_share)
    week = budget.samples_per_week
    ref_var = 1 / len(x)  # the reference mean's error variance, in units of eff_std
    h_warn = np.full(k, cusum_h(week / warn_rate, budget.cusum_k, ref_var=ref_var))
    h_alarm = np.full(k, cusum_h(week / alarm_rate, budget.cusum_k, ref_var=ref_var))
    adjusted = _replay_check(x, x_cusum, profiles, mean, eff_std, psi_warn, psi_alarm, h_warn,
                             h_alarm, budget, budget.rates(psi_share)[1], alarm_rate)
    return {"psi_warn": psi_warn.tolist(), "psi_alarm": psi_alarm.tolist(),
            "cusum_mean": mean.tolist(), "cusum_std": eff_std.tolist(), "cusum_k": budget.cusum_k,
            "cusum_h_warn": h_warn.tolist(), "cusum_h_alarm": h_alarm.tolist(),
            "replay_adjusted": adjusted}


def _replay_check(x: np.ndarray, x_cusum: np.ndarray, profiles: list[dict[str, Any]],
                  mean: np.ndarray, eff_std: np.ndarray, psi_warn: np.ndarray, psi_alarm: np.ndarray,
                  h_warn: np.ndarray, h_alarm: np.ndarray, budget: Budget,
                  psi_rate: float, cusum_rate: float) -> bool:
    """Replay the reference rows (no drift by definition); raise a threshold they cross more
    often than its law allows."""
    adjusted = False
    edges, props = pad_profiles(profiles)
    week = budget.samples_per_week
    if len(x) > budget.window:
        psi = WindowPSI(edges, props, budget.window, budget.every)
        looks = np.array([value for _, value in psi.update(x)])
        if len(looks):
            limit = allowed_alarms(len(x), psi_rate, week)
            for col in range(x.shape[1]):
                over = looks[:, col] > psi_alarm[col]
                ups = int(over[0]) + int((over[1:] & ~over[:-1]).sum())
                if ups > limit:
                    worst = float(looks[:, col].max()) * 1.1
                    psi_warn[col] *= worst / psi_alarm[col]
                    psi_alarm[col] = worst
                    adjusted = True
    for _ in range(20):
        cusum = Cusum(mean, eff_std, budget.cusum_k, h_alarm, h_warn=h_warn)
        too_often = fired_too_often(cusum, x_cusum, len(x), cusum_rate, week)
        if not too_often:
            break
        for col in too_often:
            h_alarm[col] *= 1.25
            h_warn[col] *= 1.25
        adjusted = True
    return adjusted


def _cbpe(confidence: np.ndarray, holdout: dict[str, Any], budget: Budget,
          share: float) -> dict[str, Any]:
    """Expected accuracy over a window against the held-out reference. The drop is the window
    mean's level for the share's rate plus REFERENCE_BOUND standard errors of the reference
    mean: that error is one fixed offset for a bundle's whole life, so a spread that only adds
    it in (right on average over bundles) let an optimistic bundle alarm many times its share
    (docs/monitoring.md, the twelfth held-out set)."""
    n = len(confidence)
    infl = float(long_run_inflation(confidence, max_lag=min(budget.window, max(2, n // 5)), safe=True)[0])
    var = float(confidence.var()) * infl
    window_sd, reference_sd = math.sqrt(var / budget.window), math.sqrt(var / max(1, n))
    warn_rate, alarm_rate = budget.rates(share)
    week = budget.samples_per_week
    z_warn = window_mean_z(warn_rate, week, budget.window, budget.every)
    z_alarm = window_mean_z(alarm_rate, week, budget.window, budget.every)
    offset = REFERENCE_BOUND * reference_sd
    return {"reference_expected_accuracy": float(confidence.mean()),
            "holdout_accuracy": holdout.get("accuracy"), "reference_rows": n,
            "warn_drop": z_warn * window_sd + offset, "alarm_drop": z_alarm * window_sd + offset,
            "inflation": round(infl, 3), "reference_bound": REFERENCE_BOUND}


def js_threshold(rate_per_week: float, budget: Budget, categories: int, n_ref: int,
                 infl: float) -> float:
    """Jensen-Shannon distance (base 2) that a no-drift window exceeds ``rate_per_week`` times a
    week: for small differences JSD (nats) ~ chi-square(c-1) / 8 * (1/W + 1/N_ref)."""
    alpha = window_alpha(rate_per_week, budget.samples_per_week, budget.every)
    jsd_nats = chi2_quantile(1 - alpha, max(1, categories)) * (1 / budget.window + 1 / n_ref) * infl / 8
    return math.sqrt(jsd_nats / math.log(2))


def _categorical(x: np.ndarray, profiles: list[dict[str, Any]], budget: Budget,
                 share: float) -> dict[str, Any]:
    infl = long_run_inflation(x)
    warn_rate, alarm_rate = budget.rates(share)
    # categories + the 'unseen' slot: c degrees of freedom
    warn = [js_threshold(warn_rate, budget, len(p["categories"]), len(x), float(i))
            for p, i in zip(profiles, infl, strict=True)]
    alarm = [js_threshold(alarm_rate, budget, len(p["categories"]), len(x), float(i))
             for p, i in zip(profiles, infl, strict=True)]
    return {"categories": [p["categories"] for p in profiles],
            "proportions": [[*p["category_proportions"], 0.0] for p in profiles],
            "js_warn": warn, "js_alarm": alarm}

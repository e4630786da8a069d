"""Detector thresholds from a false-alarm budget, calibrated on the training data.

The budget is "N false alarms per feature per week at the line's sample rate". Theory gives a
first threshold (Siegmund's ARL approximation for the Gaussian CUSUM, Lorden's bound for
likelihood-ratio CUSUMs, the chi-square law of PSI for a window of W samples), corrected for
the autocorrelation real process data has; then the training data are replayed through every
detector, and a threshold that would have fired on them is raised (they contain no drift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from agent.monitor.detectors import Cusum, WindowPSI

SECONDS_PER_WEEK = 7 * 24 * 3600


@dataclass(frozen=True)
class Budget:
    sample_rate_hz: float = 1.0
    alarms_per_week: float = 1.0  # false alarms per feature per week
    warnings_per_week: float = 10.0
    window: int = 500
    every: int = 32
    cusum_k: float = 0.25  # tuned for shifts of half a standard deviation

    @property
    def samples_per_week(self) -> float:
        return self.sample_rate_hz * SECONDS_PER_WEEK


def siegmund_arl(h: float, k: float) -> float:
    """In-control average run length of a one-sided standardised CUSUM (Siegmund, 1985)."""
    b = h + 1.166
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


def cusum_h(arl: float, k: float, two_sided: bool = True) -> float:
    """Smallest h whose in-control ARL reaches ``arl`` (two-sided: both tails share it)."""
    target = 2 * arl if two_sided else arl
    lo, hi = 0.1, 60.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if siegmund_arl(mid, k) < target else (lo, mid)
    return hi


def bernoulli_h(arl: float, p0: float, p1: float) -> float:
    """Threshold of a Bernoulli likelihood-ratio CUSUM for an in-control ARL.

    ARL ~ e^h / I with I = KL(p1 || p0), the information per observation (the Gaussian case of
    Siegmund's formula has the same form); never below 3 to stay clear of single bursts.
    """
    kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    return max(3.0, math.log(arl * kl))


def chi2_quantile(p: float, df: int) -> float:
    """Wilson-Hilferty approximation: no scipy on the gateway."""
    z = NormalDist().inv_cdf(p)
    c = 2.0 / (9.0 * df)
    return float(df * (1 - c + z * math.sqrt(c)) ** 3)


def ar1(x: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation per column, clipped to [0, 0.95] (rows in time order)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) < 3:
        return np.zeros(x.shape[1])
    d = x - x.mean(axis=0)
    den = (d * d).sum(axis=0)
    num = (d[1:] * d[:-1]).sum(axis=0)
    rho = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    return np.asarray(np.clip(rho, 0.0, 0.95))


def inflation(rho: np.ndarray) -> np.ndarray:
    """Variance of sums of an AR(1) series relative to white noise: (1+rho)/(1-rho)."""
    return np.asarray((1 + rho) / (1 - rho))


def psi_threshold(rate_per_week: float, budget: Budget, bins: np.ndarray, n_ref: int,
                  infl: np.ndarray) -> np.ndarray:
    """PSI above which a no-drift window appears ``rate_per_week`` times a week.

    Under no drift, PSI * (1/W + 1/N_ref)^-1 is about chi-square with (bins-1) degrees of
    freedom; overlapping windows are about samples_per_week / W independent looks a week.
    """
    # evaluations every `every` samples are counted as independent looks: conservative
    looks = max(1.0, budget.samples_per_week / budget.every)
    alpha = min(0.5, rate_per_week / looks)
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
              categorical: list[bool] | None = None) -> dict[str, Any]:
    """Thresholds for every detector of a model, as the manifest's ``monitoring`` section."""
    cat = np.asarray(categorical if categorical is not None else [False] * x.shape[1], dtype=bool)
    numeric = np.flatnonzero(~cat)
    categorical_part = _categorical(x[:, cat], [p for p, c in zip(profiles, cat, strict=True) if c],
                                    budget) if cat.any() else None
    x = x[:, numeric]
    profiles = [profiles[i] for i in numeric]
    k = x.shape[1]
    week = budget.samples_per_week
    rho = ar1(x)
    infl = inflation(rho)
    bins = np.array([len(p["edges"]) + 1 for p in profiles])
    mean, std = x.mean(axis=0), x.std(axis=0)
    monitoring: dict[str, Any] = {
        "budget": budget.__dict__, "window": budget.window, "every": budget.every,
        "data": _stream_thresholds(x, x, profiles, mean, std, infl, bins, budget),
    }
    # class probabilities are skewed; their logit is close to normal, which the CUSUM assumes
    transform = "logit" if confidence is not None else "none"
    cusum_score = score_transform(score, transform)
    monitoring["prediction"] = _stream_thresholds(
        score[:, None], cusum_score[:, None], [score_profile], np.array([cusum_score.mean()]),
        np.array([cusum_score.std()]), inflation(ar1(cusum_score)),
        np.array([len(score_profile["edges"]) + 1]), budget)
    monitoring["prediction"]["transform"] = transform
    monitoring["data"]["columns"] = numeric.tolist()
    if categorical_part is not None:
        monitoring["categorical"] = {"columns": np.flatnonzero(cat).tolist(), **categorical_part}
    if k >= 2:
        monitoring["multivariate"] = _pca(x, mean, std, budget)
        monitoring["multivariate"]["columns"] = numeric.tolist()
    if confidence is not None:
        c_rho = float(ar1(confidence)[0])
        looks = max(1.0, week / budget.every)
        sd = float(confidence.std()) * math.sqrt(float(inflation(np.array([c_rho]))[0]) / budget.window)
        monitoring["cbpe"] = {
            "reference_expected_accuracy": float(confidence.mean()),
            "holdout_accuracy": holdout.get("accuracy"),
            "warn_drop": NormalDist().inv_cdf(1 - min(0.5, budget.warnings_per_week / looks)) * sd,
            "alarm_drop": NormalDist().inv_cdf(1 - min(0.5, budget.alarms_per_week / looks)) * sd,
        }
    if "accuracy" in holdout:
        p0 = float(np.clip(1 - holdout["accuracy"], 0.01, 0.5))
        p1 = min(0.99, 1.5 * p0)
        monitoring["labels"] = {
            "error_rate": p0, "designed_rate": p1,
            "h_warn": bernoulli_h(week / budget.warnings_per_week, p0, p1),
            "h_alarm": bernoulli_h(week / budget.alarms_per_week, p0, p1),
        }
    elif "mae" in holdout:
        monitoring["labels"] = {"mae": holdout["mae"], "rmse": holdout.get("rmse")}
    monitoring["autocorrelation"] = rho.round(4).tolist()
    return monitoring


def score_transform(score: np.ndarray, transform: str) -> np.ndarray:
    if transform == "logit":
        p = np.clip(score, 1e-6, 1 - 1e-6)
        return np.asarray(np.log(p / (1 - p)))
    return np.asarray(score, dtype=np.float64)


def _stream_thresholds(x: np.ndarray, x_cusum: np.ndarray, profiles: list[dict[str, Any]],
                       mean: np.ndarray, std: np.ndarray, infl: np.ndarray, bins: np.ndarray,
                       budget: Budget) -> dict[str, Any]:
    k = x.shape[1]
    psi_warn = psi_threshold(budget.warnings_per_week, budget, bins, len(x), infl)
    psi_alarm = psi_threshold(budget.alarms_per_week, budget, bins, len(x), infl)
    if budget.window >= 500:  # the rule-of-thumb levels are valid only for large windows
        psi_warn, psi_alarm = np.maximum(psi_warn, 0.1), np.maximum(psi_alarm, 0.25)
    eff_std = std * np.sqrt(infl)
    h_warn = cusum_h(budget.samples_per_week / budget.warnings_per_week, budget.cusum_k)
    h_alarm = cusum_h(budget.samples_per_week / budget.alarms_per_week, budget.cusum_k)
    h_warn_v, h_alarm_v = np.full(k, h_warn), np.full(k, h_alarm)
    adjusted = _replay_check(x, x_cusum, profiles, mean, eff_std, psi_warn, psi_alarm, h_warn_v,
                             h_alarm_v, budget)
    return {"psi_warn": psi_warn.tolist(), "psi_alarm": psi_alarm.tolist(),
            "cusum_mean": mean.tolist(), "cusum_std": eff_std.tolist(), "cusum_k": budget.cusum_k,
            "cusum_h_warn": h_warn_v.tolist(), "cusum_h_alarm": h_alarm_v.tolist(),
            "replay_adjusted": adjusted}


def _replay_check(x: np.ndarray, x_cusum: np.ndarray, profiles: list[dict[str, Any]],
                  mean: np.ndarray,
                  eff_std: np.ndarray, psi_warn: np.ndarray, psi_alarm: np.ndarray,
                  h_warn: np.ndarray, h_alarm: np.ndarray, budget: Budget) -> bool:
    """Replay the training data (no drift by definition); raise any threshold it crosses."""
    adjusted = False
    edges, props = pad_profiles(profiles)
    if len(x) > budget.window:
        psi = WindowPSI(edges, props, budget.window, budget.every)
        worst = np.zeros(x.shape[1])
        for _, value in psi.update(x):
            worst = np.maximum(worst, value)
        for arr, scale in ((psi_warn, 1.2), (psi_alarm, 1.5)):
            low = worst * scale > arr
            if low.any():
                arr[low] = worst[low] * scale
                adjusted = True
    for _ in range(20):
        cusum = Cusum(mean, eff_std, budget.cusum_k, h_alarm, h_warn=h_warn)
        fired = cusum.update(x_cusum)
        alarms = {d.column for d in fired if d.level == "alarm"}
        if not alarms:
            break
        for col in alarms:
            h_alarm[col] *= 1.25
            h_warn[col] *= 1.25
        adjusted = True
    return adjusted


def js_threshold(rate_per_week: float, budget: Budget, categories: int, n_ref: int,
                 infl: float) -> float:
    """Jensen-Shannon distance (base 2) that a no-drift window exceeds ``rate_per_week`` times a
    week: for small differences JSD (nats) ~ chi-square(c-1) / 8 * (1/W + 1/N_ref)."""
    looks = max(1.0, budget.samples_per_week / budget.every)
    alpha = min(0.5, rate_per_week / looks)
    jsd_nats = chi2_quantile(1 - alpha, max(1, categories)) * (1 / budget.window + 1 / n_ref) * infl / 8
    return math.sqrt(jsd_nats / math.log(2))


def _categorical(x: np.ndarray, profiles: list[dict[str, Any]], budget: Budget) -> dict[str, Any]:
    infl = inflation(ar1(x))
    # categories + the 'unseen' slot: c degrees of freedom
    warn = [js_threshold(budget.warnings_per_week, budget, len(p["categories"]), len(x), float(i))
            for p, i in zip(profiles, infl, strict=True)]
    alarm = [js_threshold(budget.alarms_per_week, budget, len(p["categories"]), len(x), float(i))
             for p, i in zip(profiles, infl, strict=True)]
    return {"categories": [p["categories"] for p in profiles],
            "proportions": [[*p["category_proportions"], 0.0] for p in profiles],
            "js_warn": warn, "js_alarm": alarm}


def _pca(x: np.ndarray, mean: np.ndarray, std: np.ndarray, budget: Budget) -> dict[str, Any]:
    """Principal subspace of the standardised training data; the log reconstruction error of a
    sample measures how far it leaves the correlations seen in training."""
    safe_std = np.where(std > 0, std, 1.0)
    z = (x - mean) / safe_std
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    m = int(min(x.shape[1] - 1, max(1, np.searchsorted(share, 0.9) + 1)))
    comps = vt[:m]
    err = reconstruction_log_error(z, comps)
    e_rho = ar1(err)
    e_std = float(err.std() * math.sqrt(float(inflation(e_rho)[0])))
    h_warn = cusum_h(budget.samples_per_week / budget.warnings_per_week, budget.cusum_k, False)
    h_alarm = cusum_h(budget.samples_per_week / budget.alarms_per_week, budget.cusum_k, False)
    for _ in range(20):  # replay check, as for the per-feature detectors
        c = Cusum(np.array([err.mean()]), np.array([e_std]), budget.cusum_k, h_alarm, True, h_warn)
        if not any(d.level == "alarm" for d in c.update(err[:, None])):
            break
        h_alarm, h_warn = h_alarm * 1.25, h_warn * 1.25
    return {"mean": mean.tolist(), "scale": safe_std.tolist(), "components": comps.tolist(),
            "error_mean": float(err.mean()), "error_std": e_std, "cusum_k": budget.cusum_k,
            "h_warn": h_warn, "h_alarm": h_alarm, "explained": float(share[m - 1])}


def reconstruction_log_error(z: np.ndarray, comps: np.ndarray) -> np.ndarray:
    residual = z - (z @ comps.T) @ comps
    return np.asarray(np.log((residual**2).sum(axis=1) + 1e-9))

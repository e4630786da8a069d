"""The prediction-error detectors' reference: each numeric input predicted from the others now
and every input a step before (least squares on the standardised reference rows), the scale
CUSUM on its squared error and the mean CUSUM on the error itself (bundles before the pooled
section; after it, the pooled section's decorrelated residuals take that place)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.monitor.budget import Budget
from agent.monitor.cusum import Cusum
from agent.monitor.laws import cusum_h, long_run_inflation, robust_scale_h, scale_cusum_h, scale_k
from agent.monitor.replaycheck import fired_too_often

SCALE_CAP = 9.0  # z^2 beyond this (3 standard deviations) counts as 9 in the scale CUSUM


def prediction_errors(u: np.ndarray, prev: np.ndarray | None, coef: np.ndarray) -> np.ndarray:
    """One-step prediction errors of standardized inputs ``u`` (rows in time order): each
    stream predicted from the other streams now and every stream's previous value,
    u_t - [u_t, u_{t-1}] @ coef (the diagonal of coef's first block is zero). ``prev`` is the
    row before the first (None: the reference mean)."""
    k = u.shape[1]
    now, before = coef[:k], coef[k:]
    out = u - u @ now
    lagged = u @ before  # each row's contribution to the next row's prediction
    out[1:] -= lagged[:-1]
    if prev is not None:
        out[0] -= prev @ before
    return np.asarray(out)


def predictor(u: np.ndarray) -> np.ndarray:
    """Least squares (lightly ridged) of each stream on the others now and all a step before."""
    k = u.shape[1]
    design = np.hstack([u[1:], u[:-1]])
    gram = design.T @ design + 1e-3 * len(design) * np.eye(2 * k)
    cross = design.T @ u[1:]
    coef = np.zeros((2 * k, k))
    for i in range(k):
        keep = np.array([j for j in range(2 * k) if j != i])
        coef[keep, i] = np.linalg.solve(gram[np.ix_(keep, keep)], cross[keep, i])
    return coef


@dataclass
class PredictionFit:
    """Each numeric input predicted from the others now and every input a step before, on the
    standardised reference rows: what the scale, residual and tie CUSUMs are built on."""

    std: np.ndarray  # the inputs' spreads (0 replaced by 1)
    u: np.ndarray  # the standardised rows
    coef: np.ndarray
    err: np.ndarray  # prediction errors of rows 1 .. n-1
    resid_std: np.ndarray  # their spreads, raised by spread_bump
    spread_bump: float


def prediction_fit(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> PredictionFit:
    safe = np.where(std > 0, std, 1.0)
    u = (x - mean) / safe
    coef = predictor(u) if len(u) > 2 * u.shape[1] + 10 else np.zeros((2 * u.shape[1], u.shape[1]))
    err = prediction_errors(u, None, coef)[1:]
    resid_std = err.std(axis=0) if len(err) > 2 else np.ones_like(safe)
    # two standard errors up (1/sqrt(2n) each): a spread estimated low shifts the scale CUSUM's
    # in-control drift, and a short reference (a retrained model's) has a wide one
    bump = 1 + 2 / math.sqrt(2 * max(1, len(err)))
    return PredictionFit(safe, u, coef, err, np.where(resid_std > 0, resid_std, 1.0) * bump, bump)


def scale_section(x: np.ndarray, mean: np.ndarray, fit: PredictionFit, budget: Budget,
                  share: float, resid_share: float) -> dict[str, Any]:
    """Scale CUSUM per numeric stream on its squared standardized prediction error (from the
    other streams and the previous values): a spread growing to ``scale_ratio`` times the
    reference, or a stream that no longer follows the others, moves it up. z^2 is clipped at
    SCALE_CAP (a single outlier of heavy-tailed noise must not be an alarm by itself) and its
    law is the Markov chain of the reference rows' own clipped z^2 (robust_scale_h); errors
    whose squares still come in runs stretch the threshold by their long-run inflation."""
    safe, coef, err, resid_std = fit.std, fit.coef, fit.err, fit.resid_std
    y = np.minimum((err / resid_std) ** 2, SCALE_CAP)
    infl = np.clip(long_run_inflation(y), 1.0, 4.0) if len(y) > 20 else np.ones(len(safe))
    k = scale_k(budget.scale_ratio)
    warn_rate, alarm_rate = budget.rates(share)
    week = budget.samples_per_week
    if len(y) >= 200:  # enough rows to show the tails of their own law
        h_warn = np.array([robust_scale_h(week / warn_rate, y[:, j], k) for j in range(y.shape[1])]) * infl
        h_alarm = np.array([robust_scale_h(week / alarm_rate, y[:, j], k) for j in range(y.shape[1])]) * infl
    else:
        h_warn = scale_cusum_h(week / warn_rate, k) * infl
        h_alarm = scale_cusum_h(week / alarm_rate, k) * infl
    # the mean of the same prediction errors: a shift of a few streams that breaks from what the
    # others and their own past predict (a mean CUSUM on them, as on the raw streams)
    z = err / resid_std
    z_mean = z.mean(axis=0)
    z_infl = long_run_inflation(z, safe=True) if len(z) > 20 else np.ones(len(safe))
    z_std = z.std(axis=0) * np.sqrt(z_infl)
    warn_rate, alarm_rate = budget.rates(resid_share)
    ref_var = 1 / max(1, len(z))
    m_warn = np.full(len(safe), cusum_h(week / warn_rate, budget.cusum_k, ref_var=ref_var))
    m_alarm = np.full(len(safe), cusum_h(week / alarm_rate, budget.cusum_k, ref_var=ref_var))
    adjusted = False
    cols = x.shape[1]
    scale_rate = budget.rates(share)[1]
    for _ in range(20):  # replay check (both shares are the same per stream)
        cusum = Cusum(np.concatenate([z_mean, np.zeros(cols)]), np.concatenate([z_std, np.ones(cols)]),
                      np.concatenate([np.full(cols, budget.cusum_k), np.full(cols, k)]),
                      np.concatenate([m_alarm, h_alarm]),
                      np.concatenate([np.zeros(cols, bool), np.ones(cols, bool)]),
                      np.concatenate([m_warn, h_warn]))
        fired = fired_too_often(cusum, np.hstack([z, y]), len(z), min(alarm_rate, scale_rate), week)
        if not fired:
            break
        for col in fired:
            arr_a, arr_w = (m_alarm, m_warn) if col < cols else (h_alarm, h_warn)
            arr_a[col % cols] *= 1.25
            arr_w[col % cols] *= 1.25
        adjusted = True
    return {"mean": mean.tolist(), "std": safe.tolist(), "coef": coef.round(6).tolist(),
            "resid_std": resid_std.tolist(), "k": k, "ratio": budget.scale_ratio,
            "inflation": infl.round(3).tolist(), "h_warn": h_warn.tolist(), "h_alarm": h_alarm.tolist(),
            "cap": SCALE_CAP,
            "resid_mean": z_mean.tolist(), "resid_cusum_std": z_std.tolist(),
            "resid_h_warn": m_warn.tolist(), "resid_h_alarm": m_alarm.tolist(),
            "law": "Brook-Evans Markov chain of the reference rows' own z^2 clipped at the cap, "
                   "exponential tail beyond h = 40 (theta at most the Gaussian one); h times the "
                   "long-run inflation of z^2",
            "replay_adjusted": adjusted}

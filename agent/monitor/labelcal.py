"""Thresholds of the label CUSUM, from the model's outcomes on held-out rows.

A binary classifier with enough held-out rows and mistakes gets the likelihood ratio of each
outcome against its own (Platt-calibrated) probability, so confident mistakes weigh most; any
other classifier the Bernoulli error-rate CUSUM, its in-control rate two standard errors above
the held-out one (a rate estimated low would make it drift up).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agent.monitor.budget import Budget
from agent.monitor.laws import bernoulli_h, empirical_cusum_h, long_run_inflation

ERROR_RISE = 2.0  # the error-rate CUSUM is designed for the error rate doubling
MIN_ERROR_RATE = 0.01
# the outcome CUSUM's alternative: one outcome in ten against the model. A changed relation
# shows first where the process happens to run, so the first hundred labels after it carry
# little (0.003-0.13 nats a label in the slowest development runs, 0.1-0.35 later): smaller
# steps cost less threshold (h 27% lower than for one in five, median) for nearly the same nats
# a label (9% fewer), and weak evidence then adds up sooner. Measured on the development sets'
# concept changes (95 runs, 2026-12-02): over 120 labels 2 runs instead of 7 (max 154 instead
# of 158, the slowest run has no evidence in its first 120 labels for any flip), with 30%
# labels max 137 instead of 170; no false alarm on 95 x 50,000 drift-free outcomes. One in
# twenty was faster still but raised a false alarm; pairs of CUSUMs were slower (half the share
# each).
OUTCOME_FLIP = 0.1
# no outcome is taken as surer than 1 in 50: one mistake on a part the model was 99.9% sure of
# must not be an alarm by itself (its step is at most ln(5.8) = 1.8), and clipping makes the
# in-control drift only more negative
OUTCOME_FLOOR = 0.02
MIN_OUTCOME_STEPS = 3.0  # the outcome CUSUM's threshold is at least this many largest steps
PLATT_PRIOR = 5.0
MIN_OUTCOME_ROWS, MIN_OUTCOME_ERRORS = 300, 15  # fewer: the error-rate CUSUM instead


def label_thresholds(holdout: dict[str, Any], error_bits: np.ndarray | None,
                     outcomes: tuple[np.ndarray, np.ndarray] | None, budget: Budget,
                     share: float, span: float = 0.0) -> dict[str, Any]:
    """The manifest's ``monitoring.labels`` for a classifier with held-out ``accuracy``.

    ``span``: the time scale of the inputs (agent.monitor.laws.slowest, from all rows). Outcomes
    come in runs as long as the process stays in a region where the model errs; a thousand
    held-out outcomes are too few to show that time scale themselves (their sample
    correlations sit within noise of zero, each of them small, their sum not), so their
    long-run inflation is estimated over at least the bandwidth of the inputs' time scale, raised by one
    standard error as every other detector's: estimated low, it makes a one-a-week CUSUM
    alarm several times a week (measured: 1.3-5x its law on the fresh-10 shape)."""
    if outcomes is not None and len(outcomes[0]) and _enough_outcomes(outcomes[0], holdout):
        return _outcomes(outcomes[0], outcomes[1], holdout, budget, share, span)
    return _error_rate(holdout, error_bits, budget, share, span)


def _error_rate(holdout: dict[str, Any], error_bits: np.ndarray | None, budget: Budget,
                share: float, span: float = 0.0) -> dict[str, Any]:
    """Bernoulli CUSUM for the error rate doubling. The in-control rate is the held-out error
    rate plus two standard errors (a rate estimated low would make the CUSUM drift up); errors
    that come in runs stretch the threshold by their long-run inflation (the diffusion law)."""
    n = int(holdout.get("n") or (len(error_bits) if error_bits is not None else 0)) or 1
    p_hat = 1 - float(holdout["accuracy"])
    infl = 1.0
    if error_bits is not None and len(error_bits) >= 20:
        lags = min(200, len(error_bits) // 5)
        infl = float(long_run_inflation(error_bits.astype(np.float64), max_lag=lags, safe=True,
                                        slow=span)[0])
    se = math.sqrt(max(p_hat, MIN_ERROR_RATE) * (1 - p_hat) * infl / n)
    p0 = float(np.clip(p_hat + 2 * se, MIN_ERROR_RATE, 0.45))
    p1 = min(0.95, ERROR_RISE * p0)
    warn_rate, alarm_rate = budget.rates(share)
    # labels at the sample rate at most: the label CUSUM's budget in labels per week
    week = budget.samples_per_week
    return {"kind": "error_rate", "error_rate": p0, "holdout_error_rate": round(p_hat, 6),
            "designed_rate": p1,
            "inflation": round(infl, 3),
            "h_warn": bernoulli_h(week / warn_rate, p0, p1) * infl,
            "h_alarm": bernoulli_h(week / alarm_rate, p0, p1) * infl}




def platt(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling on held-out rows: P(positive) = sigmoid(a logit(p) + b), by Newton's method
    (lightly ridged; a kept in [0.2, 5]). Without both classes: the identity."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 2 or y.min() == y.max():
        return 1.0, 0.0
    lg = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1.0))
    a, b = 1.0, 0.0
    for _ in range(50):
        q = 1 / (1 + np.exp(-(a * lg + b)))
        w = q * (1 - q)
        # a prior worth PLATT_PRIOR rows pulls a small holdout towards the model's own
        grad = np.array([((q - y) * lg).sum() + PLATT_PRIOR * (a - 1), (q - y).sum() + PLATT_PRIOR * b])
        hess = np.array([[(w * lg * lg).sum() + PLATT_PRIOR, (w * lg).sum()],
                         [(w * lg).sum(), w.sum() + PLATT_PRIOR]])
        step = np.linalg.solve(hess, grad)
        a, b = float(np.clip(a - step[0], 0.2, 5.0)), float(b - step[1])
        if abs(step).max() < 1e-8:
            break
    return a, b


def outcome_llr(p: np.ndarray, positive: np.ndarray, a: float, b: float,
                flip: float = OUTCOME_FLIP) -> np.ndarray:
    """Log-likelihood ratio of each outcome: 'one in ``flip`` goes against the model' over 'the
    model's calibrated probability holds'."""
    lg = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1.0))
    q = np.clip(1 / (1 + np.exp(-(a * lg + b))), OUTCOME_FLOOR, 1 - OUTCOME_FLOOR)
    alt = (1 - flip) * q + flip * (1 - q)
    return np.asarray(np.where(positive, np.log(alt / q), np.log((1 - alt) / (1 - q))))


def _enough_outcomes(p: np.ndarray, holdout: dict[str, Any]) -> bool:
    """Weighing outcomes by the model's probabilities needs those probabilities calibrated on
    enough held-out rows and mistakes; with fewer, the error rate alone is the safer test."""
    errors = round((1 - float(holdout["accuracy"])) * len(p))
    return len(p) >= MIN_OUTCOME_ROWS and errors >= MIN_OUTCOME_ERRORS


def _outcomes(p: np.ndarray, positive: np.ndarray, holdout: dict[str, Any], budget: Budget,
              share: float, span: float = 0.0) -> dict[str, Any]:
    """Label CUSUM of a binary classifier: the likelihood ratio of the outcomes against its own
    probabilities, calibrated on held-out rows (Platt). Confident mistakes weigh most, which is
    what a changed relation makes. Law: the Markov chain of the held-out log ratios (iid),
    with its exponential tail beyond (E[exp(llr)] = 1 in control: theta near 1, Wald);
    outcomes in runs stretch h by the long-run inflation of the held-out log ratios."""
    a, b = platt(p, positive)
    llr = outcome_llr(p, positive, a, b)
    infl = float(long_run_inflation(llr, max_lag=max(2, min(200, len(llr) // 5)), safe=True,
                                    slow=span)[0]) if len(llr) >= 20 else 1.0
    warn_rate, alarm_rate = budget.rates(share)
    week = budget.samples_per_week  # labels at the sample rate at most
    law = ("Markov chain of the held-out log ratios, exponential tail (theta <= 1); at least "
           f"{MIN_OUTCOME_STEPS:g} largest steps")
    largest = (1 - OUTCOME_FLIP) * OUTCOME_FLOOR + OUTCOME_FLIP * (1 - OUTCOME_FLOOR)
    floor = MIN_OUTCOME_STEPS * math.log(largest / OUTCOME_FLOOR)
    h_warn = max(floor, empirical_cusum_h(week / warn_rate, llr))
    h_alarm = max(floor, empirical_cusum_h(week / alarm_rate, llr))
    return {"kind": "outcome_lr", "platt": [a, b], "flip": OUTCOME_FLIP, "law": law,
            "holdout_error_rate": round(1 - float(holdout["accuracy"]), 6),
            "holdout_llr_mean": round(float(llr.mean()), 6), "inflation": round(infl, 3),
            "h_warn": max(3.0, h_warn) * infl, "h_alarm": max(3.0, h_alarm) * infl}

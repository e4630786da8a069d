"""The tie CUSUM: a tag that stops following the others (a broken correlation, a sensor that
drifts loose from its group), one stream per tag that has a tie worth watching.

Its increment is the log-likelihood ratio of "this tag now follows only its own past" against
"it follows the others, as in the reference" (Gaussian one-step predictions, both from the
reference rows):

    l_t = (z_t^2 - w_t^2) / 2 + ln(s / sigma)

with z = e / s the tag's prediction error from the others now and every tag a step before (the
scale CUSUM's, agent.monitor.scale.prediction_errors, spread s), and w = (u_t - phi u_(t-1))
/ sigma its error from its own past alone (an AR(1), spread sigma >= s). In control the others
predict it better (E l = -KL < 0); once its tie breaks they predict it worse while its own past
predicts it as well as ever, so l turns positive. The scale CUSUM sees only z^2 grow (by 1.25-1.44
for a broken tie, measured) and its noise; here w^2, which moves with z^2 wherever the tag is
simply large, cancels most of that noise: on the 21 development sets of bench/drift_cases.py a
broken tie was found in a median of 19-302 rows (at most 600) where the detectors before it
needed 34-1,497 (at most 1,908).

Both squares are clipped at the scale CUSUM's cap (heavy-tailed noise). A tag the others barely
predict (no tie: ln(s / sigma) near 0, a drift too small for a stable law) is not watched.

False-alarm law: the Markov chain of the reference rows' own increments with an exponential tail
(theta at most 1, Wald's for a likelihood ratio), times their long-run inflation, then the
replay check of the reference rows, as the other CUSUMs. Those increments come from
cross-fitted predictions (each half of the reference predicted by coefficients fitted on the
other half): the drift in control is small, and in-sample errors would understate it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.monitor.cusum import Cusum
from agent.monitor.laws import ar1, empirical_cusum_h, long_run_inflation
from agent.monitor.scale import PredictionFit, prediction_errors, predictor

# a tie is watched when the others improve the tag's one-step prediction by at least this much
# a row (nats; in control the increments drift down by it): a tag in no group (0.001-0.002
# measured) would random-walk its sum into false alarms
TIE_MIN = 0.01


def own_past(u: np.ndarray, spread_bump: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column of the standardised reference rows ``u``: the AR(1) coefficient and the
    spread of the one-step error from its own past (raised by ``spread_bump``, as the scale
    CUSUM's spread)."""
    phi = np.clip(ar1(u), -0.99, 0.99)
    err = u[1:] - phi * u[:-1]
    sigma = err.std(axis=0) if len(err) > 2 else np.ones(u.shape[1])
    return phi, np.where(sigma > 0, sigma, 1.0) * spread_bump


def differences(z2: np.ndarray, u: np.ndarray, prev: np.ndarray | None, phi_over_sigma: np.ndarray,
                inv_sigma: np.ndarray, cap: float, out: np.ndarray | None = None) -> np.ndarray:
    """z2 - w^2, the part of each increment that changes from row to row: l_t is half of it
    plus log_ratio, a shift and a scale the monitor's CUSUM bank applies in its own
    standardisation (its mean -2 log_ratio, its spread 2: two passes fewer per batch). Written
    into ``out`` when given."""
    w = u * inv_sigma
    w[1:] -= phi_over_sigma * u[:-1]
    if prev is not None:
        w[0] -= phi_over_sigma * prev
    np.multiply(w, w, out=w)
    np.minimum(w, cap, out=w)
    return np.asarray(np.subtract(z2, w, out=out))


def increments(z2: np.ndarray, u: np.ndarray, prev: np.ndarray | None, phi: np.ndarray,
               sigma: np.ndarray, log_ratio: np.ndarray, cap: float) -> np.ndarray:
    """l_t for rows ``u`` of the watched tags (``z2``: their clipped squared prediction errors;
    ``prev``: the row before the first, None for the reference mean)."""
    out = differences(z2, u, prev, phi / sigma, 1.0 / sigma, cap)
    out *= 0.5
    out += log_ratio
    return out


def cross_fitted_errors(u: np.ndarray, resid_std: np.ndarray) -> np.ndarray:
    """The prediction errors of rows 1 .. n-1 of ``u`` in ``resid_std``, each half's from
    coefficients fitted on the other half: the errors the line will show, not the smaller ones
    of the rows a fit was made on (the increments' drift is a few hundredths of a nat; a
    prediction error 5% too small on the reference, as a fit on a few hundred rows makes it,
    would turn it positive on the line: found by `make demo`, whose retrained model's reference
    is short)."""
    n, k = u.shape
    half = n // 2
    out = np.empty((n - 1, k))
    for fit, lo, hi in ((u[:half], half, n), (u[half:], 0, half)):
        coef = predictor(fit) if len(fit) > 2 * k + 10 else np.zeros((2 * k, k))
        err = prediction_errors(u[lo:hi], u[lo - 1] if lo else None, coef)
        if lo:
            out[lo - 1:hi - 1] = err
        else:
            out[:hi - 1] = err[1:]  # row 0 has no row before it
    return np.asarray(out / resid_std)


def tie_section(fit: PredictionFit, cap: float) -> tuple[dict[str, Any], np.ndarray]:
    """The watched tags and their increments' constants, and the reference rows' increments of
    the watched tags (for ``tie_thresholds``), from the prediction fit of the reference rows;
    the increments from cross-fitted prediction errors."""
    u = fit.u
    phi, sigma = own_past(u, fit.spread_bump)
    log_ratio = np.log(fit.resid_std / sigma)
    z = cross_fitted_errors(u, fit.resid_std) if len(u) >= 200 else np.zeros((max(0, len(u) - 1), u.shape[1]))
    llr = increments(np.minimum(z**2, cap), u[1:], u[0], phi, sigma, log_ratio, cap)
    watched = np.flatnonzero(llr.mean(axis=0) <= -TIE_MIN) if len(llr) >= 200 else np.zeros(0, int)
    return ({"columns": watched.tolist(), "phi": phi[watched].tolist(), "sigma": sigma[watched].tolist(),
             "log_ratio": log_ratio[watched].tolist(), "cap": cap,
             "drift": llr.mean(axis=0)[watched].round(5).tolist()}, llr[:, watched])


def tie_thresholds(section: dict[str, Any], llr: np.ndarray, warn_rate: float, alarm_rate: float,
                   week: float, limit: int) -> dict[str, Any]:
    """Levels per watched tag for ``warn_rate`` / ``alarm_rate`` false warnings / alarms a week
    per stream; ``limit``: the most alarms the reference rows' replay may show."""
    w = llr.shape[1]
    infl = np.clip(long_run_inflation(llr), 1.0, 4.0) if w else np.ones(0)
    h_warn = np.array([empirical_cusum_h(week / warn_rate, llr[:, j]) for j in range(w)]) * infl
    h_alarm = np.array([empirical_cusum_h(week / alarm_rate, llr[:, j]) for j in range(w)]) * infl
    adjusted = False
    for _ in range(20):  # replay check: the reference rows hold no broken tie by definition
        if not w:
            break
        bank = Cusum(np.zeros(w), np.ones(w), 0.0, h_alarm, True, h_warn)
        counts = np.bincount([d.column for d in bank.update(llr) if d.level == "alarm"], minlength=w)
        if not (counts > limit).any():
            break
        h_alarm[counts > limit] *= 1.25
        h_warn[counts > limit] *= 1.25
        adjusted = True
    return {**section, "inflation": infl.round(3).tolist(), "h_warn": h_warn.tolist(),
            "h_alarm": h_alarm.tolist(), "replay_adjusted": adjusted,
            "law": "Markov chain of the reference rows' own increments (log-likelihood ratios of "
                   "'follows its own past only' over 'follows the others'), exponential tail "
                   "(theta at most 1); h times their long-run inflation; replay check",
            "min_drift": TIE_MIN}

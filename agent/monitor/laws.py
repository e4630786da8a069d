"""False-alarm laws: the threshold a detector needs for an in-control run length, from theory.

* Gaussian CUSUM: Siegmund's approximation of the average run length (ARL).
* Scale CUSUM on squared standardized deviations, S = max(0, S + z^2 - k): the Markov chain
  of Brook and Evans (1972) on a fine grid, exact for independent Gaussian z, and beyond a
  run length of about 3e4 its exponential tail, ARL ~ A e^(theta h), theta the root of
  E[exp(theta (z^2 - k))] = 1, i.e. -ln(1 - 2 theta) / 2 = theta k.
* Bernoulli likelihood-ratio CUSUM: ARL ~ e^h / KL (Lorden's bound form).
* Window statistics (PSI, Jensen-Shannon): the chi-square law of a window of W samples against
  a reference of N, looked at every ``every`` samples.
Autocorrelation: the long-run variance of sums of a stationary series relative to its variance,
from its sample autocorrelations with Bartlett weights (never below the AR(1) formula).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def siegmund_arl(h: float, k: float) -> float:
    """In-control average run length of a one-sided standardised CUSUM (Siegmund, 1985)."""
    b = h + 1.166
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


def cusum_h(arl: float, k: float, two_sided: bool = True, margin: float = 0.0) -> float:
    """Smallest h whose in-control ARL reaches ``arl`` (two-sided: both tails share it) even
    when the reference mean is off by ``margin`` (in the CUSUM's standard deviations): the
    sums then drift down by k - margin instead of k."""
    target = 2 * arl if two_sided else arl
    k_eff = max(0.05, k - margin)
    lo, hi = 0.1, 400.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if siegmund_arl(mid, k_eff) < target else (lo, mid)
    return hi


def scale_k(ratio: float) -> float:
    """Reference value of the scale CUSUM designed for a variance ``ratio`` times the
    reference: the log-likelihood ratio of N(0, ratio) to N(0, 1), scaled to z^2 units."""
    return 2 * math.log(math.sqrt(ratio)) / (1 - 1 / ratio)


def _chi2_1_cdf(y: np.ndarray) -> np.ndarray:
    return np.array([math.erf(math.sqrt(v / 2)) if v > 0 else 0.0 for v in y.tolist()])


def scale_cusum_arl(h: float, k: float, step: float = 0.05) -> float:
    """In-control ARL of S = max(0, S + z^2 - k), z ~ N(0, 1) iid, alarm when S > h (Brook and
    Evans: states of width ``step`` on [0, h], the state at 0 holds the atom)."""
    m = max(20, int(math.ceil(h / step + 0.5)))
    w = h / (m - 0.5)
    d = np.arange(-(m - 1), m, dtype=np.float64)
    # from state i (value i*w) to state j: the increment z^2 - k lands in [(j-i-.5)w, (j-i+.5)w)
    cells = _chi2_1_cdf(k + (d + 0.5) * w) - _chi2_1_cdf(k + (d - 0.5) * w)
    i = np.arange(m)
    q = cells[(i[None, :] - i[:, None]) + (m - 1)]
    q[:, 0] = _chi2_1_cdf(k + 0.5 * w - i * w)
    run = np.linalg.solve(np.eye(m) - q, np.ones(m))
    return float(run[0])


def _scale_theta(k: float) -> float:
    lo, hi = 1e-6, 0.5 - 1e-9
    for _ in range(100):  # -ln(1-2t)/2 - t k is < 0 below the root, > 0 above it
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if -math.log(1 - 2 * mid) / 2 - mid * k < 0 else (lo, mid)
    return (lo + hi) / 2


def scale_cusum_h(arl: float, k: float) -> float:
    """Threshold of the scale CUSUM for an in-control ARL."""
    anchor = 40.0
    at_anchor = scale_cusum_arl(anchor, k)
    if arl > at_anchor:  # far tail: the exponential law, exact enough beyond the anchor
        return anchor + math.log(arl / at_anchor) / _scale_theta(k)
    lo, hi = 0.5, anchor
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if scale_cusum_arl(mid, k) < arl else (lo, mid)
    return hi


def bernoulli_h(arl: float, p0: float, p1: float) -> float:
    """Threshold of a Bernoulli likelihood-ratio CUSUM for an in-control ARL: ARL ~ e^h / I with
    I = KL(p1 || p0), the information per observation; never below 3 (single bursts)."""
    kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    return max(3.0, math.log(arl * kl))


def chi2_quantile(p: float, df: int) -> float:
    """Wilson-Hilferty approximation: no scipy on the gateway."""
    z = NormalDist().inv_cdf(p)
    c = 2.0 / (9.0 * df)
    return float(df * (1 - c + z * math.sqrt(c)) ** 3)


def window_alpha(rate_per_week: float, samples_per_week: float, every: int) -> float:
    """Exceedance probability per look of a window statistic looked at every ``every`` samples
    (the looks counted as independent: an overlapping window makes this conservative)."""
    looks = max(1.0, samples_per_week / every)
    return min(0.5, rate_per_week / looks)


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


def long_run_inflation(x: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """Long-run variance over variance per column (1 for white noise): 1 + 2 sum_j w_j rho_j with
    Bartlett weights up to ``max_lag`` (default: a tenth of the rows, at most 200). Process
    values mix a slow wander with fast noise, where the lag-1 formula alone underestimates it;
    it is still the floor. Capped at 400 (rho 0.995)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = len(x)
    floor = inflation(ar1(x))
    lags = min(200, n // 10) if max_lag is None else min(max_lag, n - 1)
    if lags < 2:
        return floor
    d = x - x.mean(axis=0)
    size = 1 << int(math.ceil(math.log2(2 * n)))
    spec = np.fft.rfft(d, size, axis=0)
    acov = np.fft.irfft(spec * np.conj(spec), size, axis=0)[: lags + 1]
    var = np.where(acov[0] > 0, acov[0], 1.0)
    rho = acov[1:] / var
    weights = 1 - np.arange(1, lags + 1) / (lags + 1)
    est = 1 + 2 * (weights[:, None] * rho).sum(axis=0)
    return np.asarray(np.clip(np.maximum(est, floor), 1.0, 400.0))

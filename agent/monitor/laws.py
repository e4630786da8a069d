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
from collections.abc import Callable
from statistics import NormalDist

import numpy as np


def siegmund_arl(h: float, k: float) -> float:
    """In-control average run length of a one-sided standardised CUSUM (Siegmund, 1985)."""
    b = h + 1.166
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


def cusum_h(arl: float, k: float, two_sided: bool = True, ref_var: float = 0.0) -> float:
    """Smallest h whose in-control ARL reaches ``arl`` (two-sided: both tails share it). With
    ``ref_var``, the variance of the reference mean's error (in the CUSUM's standard deviations,
    1/n for n reference rows), the ARL is the one expected over that error: a reference off by
    e makes the sums drift down by k - e, and E[e^(2 e b)] = e^(2 b^2 ref_var)."""
    target = 2 * arl if two_sided else arl
    lo, hi = 0.1, 400.0
    for _ in range(60):
        mid = (lo + hi) / 2
        b = mid + 1.166
        expected = siegmund_arl(mid, k) * math.exp(-2 * b * b * ref_var)
        lo, hi = (mid, hi) if expected < target else (lo, mid)
    return hi


def scale_k(ratio: float) -> float:
    """Reference value of the scale CUSUM designed for a variance ``ratio`` times the
    reference: the log-likelihood ratio of N(0, ratio) to N(0, 1), scaled to z^2 units."""
    return 2 * math.log(math.sqrt(ratio)) / (1 - 1 / ratio)


def _chi2_1_cdf(y: np.ndarray) -> np.ndarray:
    return np.array([math.erf(math.sqrt(v / 2)) if v > 0 else 0.0 for v in y.tolist()])


CHAIN_ARL_MAX = 1e13  # rows; a budget of one a week over 1,000 streams at 1 Hz asks 6e8


def chain_arl(h: float, cdf: Callable[[np.ndarray], np.ndarray], step: float = 0.05) -> float:
    """In-control ARL of S = max(0, S + X), alarm when S > h, for iid increments X with
    distribution function ``cdf`` (Brook and Evans: states of width ``step`` on [0, h], the
    state at 0 holds the atom)."""
    m = max(20, math.ceil(h / step + 0.5))
    w = h / (m - 0.5)
    d = np.arange(-(m - 1), m, dtype=np.float64)
    # from state i (value i*w) to state j: the increment lands in [(j-i-.5)w, (j-i+.5)w)
    cells = cdf((d + 0.5) * w) - cdf((d - 0.5) * w)
    i = np.arange(m)
    q = cells[(i[None, :] - i[:, None]) + (m - 1)]
    q[:, 0] = cdf(0.5 * w - i * w)
    return _run_length(q)


def _run_length(q: np.ndarray) -> float:
    """The ARL from state 0 of a CUSUM chain with transient transitions ``q``. A chain that
    almost never reaches h (steps far below it: a near-perfect model's outcome ratios) makes
    I - q nearly singular, and the solve returns garbage, even negative (-3e17 for a model with
    0.6% errors). Beyond CHAIN_ARL_MAX the figure means only "longer than any budget asks";
    it is taken as that."""
    run = float(np.linalg.solve(np.eye(len(q)) - q, np.ones(len(q)))[0])
    return run if math.isfinite(run) and 0 < run <= CHAIN_ARL_MAX else math.inf


def scale_cusum_arl(h: float, k: float, step: float = 0.05) -> float:
    """In-control ARL of S = max(0, S + z^2 - k), z ~ N(0, 1) iid, alarm when S > h."""
    return chain_arl(h, lambda v: _chi2_1_cdf(v + k), step)


def _tail_theta(increments: np.ndarray) -> float:
    """The root theta > 0 of mean(exp(theta x)) = 1 (the exponential tail of the ARL)."""
    lo, hi = 1e-4, 50.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(np.mean(np.exp(np.clip(mid * increments, -50, 50)))) < 1 else (lo, mid)
    return (lo + hi) / 2


def empirical_cusum_h(arl: float, increments: np.ndarray, anchor: float = 5.0,
                      theta_max: float = 1.0) -> float:
    """Threshold of a CUSUM of iid increments distributed as ``increments`` (a held-out sample)
    for an in-control ARL: the Markov chain at h = ``anchor``, beyond it the exponential tail
    ARL ~ A e^(theta h). A sample's largest increments are rare, so its own theta is unsure;
    a log-likelihood ratio has theta = 1 in control, the most it is taken at (``theta_max``).
    Falls back to Lorden's bound (ARL >= e^h) when the sample cannot say (no positive
    increments, or a mean that is not negative)."""
    x = np.sort(np.asarray(increments, dtype=np.float64))
    if len(x) < 20 or x.mean() >= 0 or x[-1] <= 0:
        return math.log(arl)
    theta = min(theta_max, _tail_theta(x))

    def cdf(v: np.ndarray) -> np.ndarray:
        return np.searchsorted(x, v, side="right") / len(x)

    at_anchor = chain_arl(anchor, cdf, step=anchor / 200)
    if arl > at_anchor:
        return anchor + math.log(arl / at_anchor) / theta
    lo, hi = 0.1, anchor
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if chain_arl(mid, cdf, step=anchor / 200) < arl else (lo, mid)
    return hi


def scale_theta(k: float) -> float:
    """theta of the exponential tail of the scale CUSUM's ARL for Gaussian z."""
    lo, hi = 1e-6, 0.5 - 1e-9
    for _ in range(100):  # -ln(1-2t)/2 - t k is < 0 below the root, > 0 above it
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if -math.log(1 - 2 * mid) / 2 - mid * k < 0 else (lo, mid)
    return (lo + hi) / 2


def robust_scale_h(arl: float, y: np.ndarray, k: float) -> float:
    """Threshold of the scale CUSUM S = max(0, S + y - k) for an in-control ARL, from the
    reference's own (clipped) squared errors ``y`` rather than the chi-square law: heavy-tailed
    measurement noise makes large z^2 far more common than for Gaussian z (Student t with 5
    degrees of freedom: 10 times as often beyond 9), and the Gaussian law then promises a run
    length the line never shows. The Markov chain of the empirical increments up to h = 40,
    beyond it the exponential tail with the sample's theta, at most the Gaussian one."""
    return empirical_cusum_h(arl, np.asarray(y, dtype=np.float64) - k, anchor=40.0,
                             theta_max=scale_theta(k))


def scale_cusum_h(arl: float, k: float) -> float:
    """Threshold of the scale CUSUM for an in-control ARL."""
    anchor = 40.0
    at_anchor = scale_cusum_arl(anchor, k)
    if arl > at_anchor:  # far tail: the exponential law, exact enough beyond the anchor
        return anchor + math.log(arl / at_anchor) / scale_theta(k)
    lo, hi = 0.5, anchor
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if scale_cusum_arl(mid, k) < arl else (lo, mid)
    return hi


def _bernoulli_arl(h: float, p0: float, up: float, down: float, cells: int = 40) -> float:
    """ARL of S = max(0, S + X), X = up with probability p0 else -down, alarm when S > h: the
    Markov chain on a grid of down / ``cells``."""
    w = down / cells
    m = math.ceil(h / w) + 1
    jump = max(1, round(up / w))
    q = np.zeros((m, m))
    rows = np.arange(m)
    q[rows, np.maximum(0, rows - cells)] += 1 - p0
    ups = rows + jump
    inside = ups < m
    q[rows[inside], ups[inside]] += p0
    return _run_length(q)


def bernoulli_h(arl: float, p0: float, p1: float) -> float:
    """Threshold of the Bernoulli likelihood-ratio CUSUM (steps ln(p1/p0) on an error, ln((1-p1)/
    (1-p0)) otherwise) for an in-control ARL. Its ARL grows as A e^h (E[exp(llr)] = 1 under p0,
    Wald); A comes from the Markov chain at h = 4. Never below 3 (single bursts)."""
    up, down = math.log(p1 / p0), -math.log((1 - p1) / (1 - p0))
    anchor = 4.0
    at_anchor = _bernoulli_arl(anchor, p0, up, down)
    if math.isinf(at_anchor):  # longer than the chain can say: the anchor is more than enough
        return anchor
    return max(3.0, math.log(arl / (at_anchor / math.exp(anchor))))


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


def window_mean_z(rate_per_week: float, samples_per_week: float, window: int, every: int) -> float:
    """Level (in standard deviations of a window mean) that the mean of the last ``window``
    samples, looked at every ``every`` samples, upcrosses ``rate_per_week`` times a week: the
    scan-statistic rate u phi(u) nu / window per sample (continuous looks, Siegmund and Yakir),
    nu = exp(-0.583 u sqrt(2 every / window)) for looks every ``every`` samples."""
    target = rate_per_week / samples_per_week
    lo, hi = 0.5, 12.0
    for _ in range(60):
        u = (lo + hi) / 2
        nu = math.exp(-0.583 * u * math.sqrt(2 * every / window))
        rate = u * math.exp(-u * u / 2) / math.sqrt(2 * math.pi) * nu / window
        lo, hi = (u, hi) if rate > target else (lo, u)
    return hi


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


def _bartlett(d: np.ndarray, cap: int, slow_floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Long-run variance per column of centred ``d``, and the bandwidth used: Bartlett weights,
    twice Andrews' (1991) bandwidth for an AR(1) of the slowest decay seen up to lag 10 (lags
    within noise of zero say nothing about it; twice, as the estimate is biased low)."""
    n = len(d)
    size = 1 << math.ceil(math.log2(2 * n))
    spec = np.fft.rfft(d, size, axis=0)
    acov = np.fft.irfft(spec * np.conj(spec), size, axis=0)[: cap + 1] / n
    var = np.where(acov[0] > 0, acov[0], 1.0)
    rho = acov[1:] / var
    early = rho[: min(10, cap)]
    early = np.where(early > 2 / math.sqrt(n), np.clip(early, 0.0, 0.995), 0.0)
    lag = np.arange(1, len(early) + 1)[:, None]
    slow = np.clip(np.maximum((early ** (1.0 / lag)).max(axis=0), slow_floor), 0.0, 0.995)
    alpha = 4 * slow**2 / ((1 - slow) ** 2 * (1 + slow) ** 2)
    bandwidth = np.clip(2 * 1.1447 * (alpha * n) ** (1 / 3), 1.0, float(cap))
    out = np.empty(d.shape[1])
    for col in range(d.shape[1]):
        lags = int(bandwidth[col])
        weights = 1 - np.arange(1, lags + 1) / (lags + 1)
        out[col] = var[col] * (1 + 2 * float((weights * rho[:lags, col]).sum()))
    return out, bandwidth


def long_run_inflation(x: np.ndarray, max_lag: int | None = None, safe: bool = False,
                       slow: float = 0.0, ar_order: int = 1) -> np.ndarray:
    """Long-run variance over variance per column (1 for white noise), the variance of sums
    relative to independent samples. Andrews and Monahan (1992): an AR(1) prewhitens each
    column, the Bartlett estimate of the residuals' long-run variance is recoloured by
    1 / (1 - phi)^2 (the Bartlett estimate alone is biased low for slowly wandering process
    values). Never below the AR(1) formula of lag 1; capped at 400 (rho 0.995).

    ``slow``: the bandwidth is at least Andrews' for an AR(1) of this lag-1 correlation (the
    time scale of the process a short series derives from, see ``slowest``).

    ``safe``: raised by one standard error of the estimate, (1 + sqrt(L / 3n))^2 for
    bandwidth L and n rows: a long-run spread estimated low by 10% makes a CUSUM at a
    one-a-week threshold alarm ten times as often, one estimated high only slows it a little.

    ``ar_order`` above 1: each column is prewhitened by an AR(p), p up to ``ar_order`` chosen by
    AIC, and recoloured by 1 / (1 - sum phi)^2, and the estimate may fall below the AR(1)
    formula of lag 1. A series correlated positively at lag 1 and negatively beyond (a tag
    decorrelated from the others of a coupled process, agent.monitor.pooled) has a long-run
    variance far below what its lag 1 says: on bench/line_streams.VarLine the AR(1) version
    overstates it 2.3 times (geometric mean over the streams of two lines, against 200,000
    rows), the AR(p) one 1.03 times. It stays at 1 or above, as the AR(1) one: the CUSUM laws
    are those of rows uncorrelated in time, and a series whose long-run variance is below its
    variance moves more within a few rows than such rows do (allowed down to a tenth, the
    pooled CUSUM warned in 7 of 23 VarLine runs of 50,000 drift-free rows and alarmed in one,
    where its share expects about 2 warnings; at 1, it warned in 4 of 25). The margin of
    ``safe`` counts the Bartlett part only, not the AR fit's own error."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = len(x)
    floor = inflation(ar1(x))
    if n < 20:
        return floor
    cap = min(500, n // 4) if max_lag is None else max(1, min(max_lag, n - 2))
    d = x - x.mean(axis=0)
    var = np.where(d.var(axis=0) > 0, d.var(axis=0), 1.0)
    if ar_order > 1 and n > 10 * ar_order:
        resid, phi_sum = ar_prewhitened(d, ar_order)
        lrv, bandwidth = _bartlett(resid - resid.mean(axis=0), min(cap, len(resid) // 4), slow)
        est = lrv / np.maximum(1 - phi_sum, 1e-3) ** 2 / var  # a unit root: the cap of 400
    else:
        phi = np.clip(ar1(x), 0.0, 0.97)
        resid = d[1:] - phi * d[:-1]
        lrv, bandwidth = _bartlett(resid - resid.mean(axis=0), cap, slow)
        est = np.maximum(lrv / (1 - phi) ** 2 / var, floor)
    if safe:
        est = est * (1 + np.sqrt(bandwidth / (3 * n))) ** 2
    return np.asarray(np.clip(est, 1.0, 400.0))


def ar_prewhitened(d: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column of centred ``d``: the residuals of its least-squares AR(p), p = 0 .. ``order``
    chosen by AIC, over the rows after the first ``order``; and the sum of its coefficients.
    One Cholesky factor of each column's lagged values' Gram matrix, G = L L', gives the
    residual sum of squares of every order at once: y'y minus the running sum of squares of
    L^-1 X'y (numpy's batched QR took 40 times as long)."""
    n, m = d.shape
    rows = n - order
    y = d[order:].T  # (m, rows)
    lagged = np.stack([d[order - lag:n - lag].T for lag in range(1, order + 1)], axis=2)
    gram = np.einsum("mnk,mnl->mkl", lagged, lagged)  # no BLAS threads: numpy loops, same bits anywhere
    scale = np.maximum(np.trace(gram, axis1=1, axis2=2) / order, 1e-300)
    chol = np.linalg.cholesky(gram + 1e-10 * scale[:, None, None] * np.eye(order))
    c = np.linalg.solve(chol, np.einsum("mnk,mn->mk", lagged, y)[:, :, None])[:, :, 0]
    yy = (y * y).sum(axis=1)
    rss = np.concatenate([yy[:, None], yy[:, None] - np.cumsum(c * c, axis=1)], axis=1)
    aic = np.log(np.maximum(rss, 1e-300) / rows) + 2 * np.arange(order + 1) / rows
    best = aic.argmin(axis=1)
    resid = y.T.copy()
    phi_sum = np.zeros(m)
    for col in np.flatnonzero(best):
        p = int(best[col])
        phi = np.linalg.solve(chol[col, :p, :p].T, c[col, :p])
        resid[:, col] = y[col] - lagged[col, :, :p] @ phi
        phi_sum[col] = float(phi.sum())
    return resid, phi_sum


def slowest(x: np.ndarray) -> float:
    """The lag-1 correlation of an AR(1) as slow as the slowest column of ``x`` (from its
    long-run inflation, (1 + rho) / (1 - rho)): the time scale of a process, for series
    derived from it that are too short or too noisy to show their own."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) < 20 or not x.shape[1]:
        return 0.0
    infl = float(long_run_inflation(x).max())
    return min(0.995, (infl - 1) / (infl + 1))

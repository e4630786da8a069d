"""The pooled mean CUSUM: a shift of a few tags at once, seen together rather than stream by stream.

It pools the mean CUSUMs of the numeric streams' prediction errors (the resid_cusum columns of
the bank: each tag predicted from the others now and every tag a step before, agent.monitor.
calibrate.prediction_errors, in the errors' long-run standard deviations). Those errors are each
tag's departure from what its group and its own past say, so a tag of a correlated group that
moves alone stands out of the group's common wander. Every stream has an upward and a downward
sum, S = max(0, S +- w - k), and the pooled statistic is the soft-thresholded sum of all of them,

    P_t = sum_j max(0, S_j,t - b)        (the SUM-shrinkage scheme of Liu, Zhang and Mei,
                                          Statistica Sinica 2019)

so that sums that are only in-control noise (below b) add nothing, while the few that grow
together add up: three tags shifted 0.6 sd reach the threshold in about half the rows one of
them needs alone. The per-stream sums keep their own thresholds; P has its own share of the
model's budget (agent.monitor.budget).

False-alarm law (stated in the manifest): the run length of P under no change is simulated at
build time for Gaussian w with the reference errors' correlation (a fixed seed: a bundle build
is reproducible), each replicate with its own reference-mean error N(0, R/n); the chance that P
crosses H within T rows is fitted log-linear in H along its upper tail (slope never steeper than
2k, the tail of one Gaussian CUSUM side) and extrapolated to the run length of the detector's
share. Autocorrelation is corrected as for the per-stream CUSUMs: w is in long-run standard
deviations. The reference rows are then replayed through the bank and H raised while P crosses
it more often than the 99% Poisson quantile of its share.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.monitor.alarms import TOP, Key, MonitorEvent
from agent.monitor.cusum import POOLED, Cusum, Detection, Pool
from agent.monitor.laws import ar_prewhitened, long_run_inflation
from agent.monitor.replaycheck import allowed_alarms

if TYPE_CHECKING:
    from agent.monitor.monitor import ModelMonitor

OUTLIER = 4.0  # as the monitor's mean CUSUMs: a w beyond 4 sample sds counts as 4
RIDGE = 0.1  # correlations shrunk 10% toward none: a 4,000-row estimate is noisy
PREWHITEN_ORDER = 20  # the largest AR order of the streams' long-run variance (AIC chooses)
SIM_ELEMENTS = 24_000_000  # replicates x rows x sides simulated for the law (about 1 s)


def long_run_correlation(d: np.ndarray, lags: int) -> np.ndarray:
    """Long-run correlation of the columns ``d``: Bartlett-weighted cross-covariances up to
    ``lags`` (0: the plain correlation), shrunk by RIDGE toward the identity."""
    d = d - d.mean(axis=0)
    n = len(d)
    cov = d.T @ d / n
    for lag in range(1, lags + 1):
        g = d[lag:].T @ d[:-lag] / n
        cov += (1 - lag / (lags + 1)) * (g + g.T)
    sd = np.sqrt(np.maximum(np.diag(cov), 1e-12))
    corr = cov / sd[:, None] / sd[None, :]
    return np.asarray((1 - RIDGE) * corr + RIDGE * np.eye(len(corr)))


def bandwidth(rows: int, inflation: float = 1.0) -> int:
    """Lags of a Bartlett long-run estimate over ``rows`` rows of columns whose largest long-run
    inflation is ``inflation`` (1: uncorrelated in time)."""
    return int(min(rows // 4, max(1, round(math.sqrt(inflation) * 2 * rows ** (1 / 3)))))


def prewhitened_correlation(z: np.ndarray) -> np.ndarray:
    """Long-run correlation of the columns ``z`` after each is prewhitened by its own AR(p)
    (Andrews and Monahan 1992, column by column): the residuals' Bartlett estimate at their own,
    short bandwidth, its signs recoloured by each column's 1 - sum phi (whose sizes cancel in a
    correlation), shrunk by RIDGE. The Bartlett estimate on the streams themselves needs the
    hundreds of lags of a slow loop and is then shrunk toward none by its own noise: on a test
    process of ringing tags with a shared disturbance, 0.49 and -0.69 (200,000 rows) read as
    0.09 and -0.38 on 4,000, the simulated P's tail was too light and the pooled CUSUM alarmed
    3.2 times as often as its share (tests/unit/test_monitor_pooled.py)."""
    d = z - z.mean(axis=0)
    if len(d) <= 10 * PREWHITEN_ORDER:
        return long_run_correlation(d, 0)
    resid, phi_sum = ar_prewhitened(d, PREWHITEN_ORDER)
    lags = bandwidth(len(resid))
    sign = np.where(1 - phi_sum < 0, -1.0, 1.0)
    return long_run_correlation(resid, lags) * sign[:, None] * sign[None, :]


def design_b(streams: int, k: float) -> float:
    """Soft threshold: the level one in-control side exceeds with a chance of about one over the
    number of sides (its stationary tail is e^(-2k s)), so that in control about one side at a
    time adds to P."""
    return math.log(2 * streams) / (2 * k)


def simulate_tail(corr: np.ndarray, k: float, b: float, n_ref: int, seed: int = 0) -> (
        tuple[np.ndarray, float]):
    """Maxima of P over T rows for many in-control replicates started at zero; and T."""
    streams = len(corr)
    rng = np.random.default_rng(seed)
    reps = 200
    horizon = max(2000, min(20_000, SIM_ELEMENTS // (reps * 2 * streams)))
    chol = np.linalg.cholesky(corr)
    offset = rng.standard_normal((reps, streams)) @ chol.T / math.sqrt(max(1, n_ref))
    s = np.zeros((reps, 2 * streams))
    peak = np.zeros(reps)
    step = 250
    for _ in range(horizon // step):
        z = np.clip(rng.standard_normal((step, reps, streams)) @ chol.T + offset, -OUTLIER, OUTLIER)
        y = np.concatenate([z, -z], axis=2) - k
        c = np.cumsum(y, axis=0)
        low = np.minimum(np.minimum.accumulate(c, axis=0), -s)
        c -= low
        p = np.maximum(c - b, 0.0).sum(axis=2)
        np.maximum(peak, p.max(axis=0), out=peak)
        s = c[-1]
    return np.sort(peak), float(horizon // step * step)


def threshold(arl: float, peaks: np.ndarray, horizon: float, k: float) -> float:
    """H with an in-control ARL of ``arl`` rows: P(max over T rows > H) ~ T / ARL(H) where that
    chance is small; fitted as log-linear in H over the upper fifth of the simulated maxima and
    extrapolated (slope never steeper than 2k: conservative)."""
    n = len(peaks)
    tail = peaks[int(0.8 * n):-1]
    surv = 1 - (np.arange(int(0.8 * n), n - 1) + 1) / n  # chance of a maximum above each
    slope, icpt = np.polyfit(tail, np.log(surv), 1)
    slope = max(float(slope), -2 * k)  # d log P(max > H) / dH, negative
    if slope >= -1e-3:
        slope = -2 * k
    chance = horizon / arl  # of a maximum above H within T rows, at that ARL
    if chance >= 1 / n:  # within what was simulated: the empirical quantile
        return float(np.quantile(peaks, max(0.0, 1 - chance)))
    anchor = float(tail[-1])
    at_anchor = slope * anchor + float(icpt)
    return max(anchor, anchor + (math.log(chance) - at_anchor) / slope)


def pooled_section(x: np.ndarray, mean: np.ndarray, std: np.ndarray, k: float,
                   stream_rates: tuple[float, float], pool_rates: tuple[float, float],
                   samples_per_week: float) -> dict[str, Any]:
    """The manifest's pooled section from the reference inputs ``x`` (rows in time order):
    the decorrelating matrix (applied to (x - mean) / std), the clip, each stream's own CUSUM
    thresholds (``stream_rates``: warnings and alarms per week of one stream) and the pooled
    statistic's b and thresholds (``pool_rates``)."""
    from agent.monitor.laws import cusum_h

    safe = np.where(std > 0, std, 1.0)
    u = (x - mean) / safe
    infl = long_run_inflation(u, safe=True)
    lags = bandwidth(len(u), float(infl.max()))
    matrix = _decorrelating(u, infl, lags)
    matrix = matrix / np.sqrt(_long_run_var(u @ matrix) * _out_of_sample(u, lags))[None, :]
    z = u @ matrix
    streams = x.shape[1]
    clip = OUTLIER * z.std(axis=0)
    week, n = samples_per_week, len(x)
    h_warn = np.full(streams, cusum_h(week / stream_rates[0], k, ref_var=1 / n))
    h_alarm = np.full(streams, cusum_h(week / stream_rates[1], k, ref_var=1 / n))
    b = design_b(streams, k)
    peaks, horizon = simulate_tail(prewhitened_correlation(z), k, b, n)
    section: dict[str, Any] = {
        "mean": mean.tolist(), "std": safe.tolist(), "matrix": matrix.round(8).tolist(),
        "clip": clip.tolist(), "k": k, "lags": lags, "b": b,
        "h_warn": threshold(week / pool_rates[0], peaks, horizon, k),
        "h_alarm": threshold(week / pool_rates[1], peaks, horizon, k),
        "simulated_rows": horizon * len(peaks),
        "law": "Monte Carlo of P for Gaussian z with the reference's long-run correlation of z "
               "and a reference-mean error N(0, R/n) per replicate; P(max over T rows > H) "
               "fitted log-linear in H over the upper fifth of the maxima (slope at most 2k) and "
               "extrapolated to the share's ARL; z in long-run standard deviations; each "
               "stream's own sums: Siegmund's ARL as the other mean CUSUMs"}
    stream_limit = allowed_alarms(n, stream_rates[1], week)
    pool_limit = allowed_alarms(n, pool_rates[1], week)
    adjusted = False
    for _ in range(20):  # replay check: the reference rows contain no drift by definition
        bank = Cusum(np.zeros(streams), np.ones(streams), k, h_alarm, False, h_warn, clip=clip,
                     pool=pool_of(section, 0, streams))
        dets = bank.update(z)
        fired = np.bincount([d.column for d in dets if d.column >= 0 and d.level == "alarm"],
                            minlength=streams) > stream_limit
        pooled = sum(d.column == POOLED and d.level == "alarm" for d in dets) > pool_limit
        if not fired.any() and not pooled:
            break
        h_alarm[fired] *= 1.25
        h_warn[fired] *= 1.25
        if pooled:
            section["h_alarm"] *= 1.25
            section["h_warn"] *= 1.25
        adjusted = True
    section.update(stream_h_warn=h_warn.tolist(), stream_h_alarm=h_alarm.tolist(),
                   replay_adjusted=adjusted)
    return section


def _decorrelating(u: np.ndarray, infl: np.ndarray, lags: int) -> np.ndarray:
    """Sigma^-1 / sqrt(diag(Sigma^-1)) for the long-run covariance Sigma = D corr D of ``u``
    (D its long-run spreads): column j gives stream j's residual on all the others."""
    lr_sd = np.sqrt(infl)
    prec = np.linalg.inv(long_run_correlation(u, lags)) / lr_sd[:, None] / lr_sd[None, :]
    return np.asarray(prec / np.sqrt(np.diag(prec))[None, :])


def _long_run_var(z: np.ndarray) -> np.ndarray:
    """Long-run variance per column, one standard error up (as the other mean CUSUMs), after an
    AR(p) prewhitening: a tag decorrelated from the others of a coupled process is often
    correlated positively at lag 1 and negatively beyond, and the AR(1) estimate of the other
    mean CUSUMs overstates such a stream's long-run variance (2.3 times on VarLine's tags):
    the mean shift took 0.88 of the rows on 150 development lines (VarLine's: 0.74), with its
    false alarms at the budget's rate (docs/monitoring.md, "The pooled streams' long-run
    variance")."""
    return np.asarray(long_run_inflation(z, safe=True, ar_order=PREWHITEN_ORDER) * z.var(axis=0))


def _out_of_sample(u: np.ndarray, lags: int) -> np.ndarray:
    """How much larger the residuals' long-run variance is on rows the decorrelation was not
    fitted on: fitted on one half of the reference, measured on the other, both ways (never
    below 1). A residual on the rows its own coefficients were fitted on is smaller than it
    will be on the line, and a spread taken there makes the CUSUM alarm too often."""
    half = len(u) // 2
    ratios = []
    for fit, other in ((u[:half], u[half:]), (u[half:], u[:half])):
        m = _decorrelating(fit, long_run_inflation(fit, safe=True), max(1, min(lags, len(fit) // 4)))
        ratios.append(_long_run_var(other @ m) / _long_run_var(fit @ m))
    return np.asarray(np.maximum(1.0, np.mean(ratios, axis=0)))


def transform(spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(M, c) with z = x @ M - c for raw inputs x."""
    std = np.asarray(spec["std"], dtype=np.float64)
    matrix = np.asarray(spec["matrix"], dtype=np.float64) / std[:, None]
    return matrix, np.asarray(spec["mean"], dtype=np.float64) @ matrix


def pool_of(spec: dict[str, Any], first: int, streams: int, rank_first: int | None = None) -> Pool:
    """The Pool of a manifest's section over the bank's columns first .. first + streams - 1
    (``rank_first``: the first of the streams' own mean CUSUM columns, which rank them)."""
    return Pool(first, streams, float(spec["b"]), float(spec["h_alarm"]), float(spec["h_warn"]),
                rank_first)


def monitor_events(monitor: ModelMonitor, dets: list[Detection]) -> list[MonitorEvent]:
    """Conditions of the pooled detector: one per model at a time, named after the first of its
    streams when it rose (the name stays while it is up), all the streams that carry P (largest
    own level first) as its top features."""
    pool = monitor.cusum.pool
    assert pool is not None
    events: list[MonitorEvent] = []
    for d in dets:
        current: Key | None = next((key for key in monitor.book.states if key[1] == "pooled_cusum"), None)
        if d.level == "quiet":
            if current is not None:
                events += monitor._normal(current, d.index, pool.h_warn)
            continue
        # the streams that carry P, those whose own level moved most (their mean CUSUM) first
        # (the bank ranks them at the sample): a tag that leaves its group moves the residuals
        # of its group-mates too
        top = [monitor.names[j] for j in monitor.cusum.pool_streams.get(d.index, [])[:TOP]]
        feature = current[2] if current is not None else (top[0] if top else None)
        start = d.start_index if d.start_index >= 0 else None
        thr = pool.h if d.level == "alarm" else pool.h_warn
        events += monitor._raise(monitor._event("data_drift", "pooled_cusum", feature, d.level, d.score,
                                                thr, d.index, top, start))
    return events

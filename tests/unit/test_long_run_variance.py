"""The long-run variance of agent.monitor.laws.long_run_inflation with an AR(p) prewhitening
(``ar_order``), which the pooled mean CUSUM's streams are scaled by: a series correlated
positively at lag 1 and negatively beyond has a long-run variance below its lag 1's AR(1)
formula, and often below its variance; the AR(1) estimate never goes below either."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.monitor.laws import ar1, inflation, long_run_inflation
from agent.monitor.pooled import pooled_section, transform

ORDER = 20


def ar_series(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    e = rng.normal(size=n) * math.sqrt(1 - rho**2)
    x = np.empty(n)
    x[0] = 0.0
    for t in range(1, n):
        x[t] = rho * x[t - 1] + e[t]
    return x


def batch_means_lrv(x: np.ndarray, size: int = 2000) -> np.ndarray:
    """Long-run variance per column from the means of batches of ``size`` rows."""
    d = x - x.mean(axis=0)
    batches = len(d) // size
    means = d[: batches * size].reshape(batches, size, -1).mean(axis=1)
    return np.asarray(means.var(axis=0) * size)


def test_a_series_negative_beyond_lag_one_is_estimated_near_its_truth() -> None:
    """MA(4) e_t + 0.8 e_(t-1) + 0.3 e_(t-2) - 0.4 e_(t-4): variance 1.89, long-run variance
    (1 + 0.8 + 0.3 - 0.4)^2 = 2.89, an inflation of 1.53, while its lag 1 (0.55) alone says 3.4."""
    rng = np.random.default_rng(41)
    e = rng.normal(size=40_004)
    x = e[4:] + 0.8 * e[3:-1] + 0.3 * e[2:-2] - 0.4 * e[:-4]
    truth = 2.89 / 1.89
    old = float(long_run_inflation(x)[0])
    assert old >= float(inflation(ar1(x))[0]) > 3.0  # the AR(1) estimate: twice the truth
    assert float(long_run_inflation(x, ar_order=ORDER)[0]) == pytest.approx(truth, rel=0.1)


def test_the_prewhitened_estimate_stays_at_the_variance_or_above() -> None:
    """MA(3) e_t + 0.6 e_(t-1) - 0.5 e_(t-3): inflation 1.21 / 1.61 = 0.75, below 1; the
    estimate is 1 (the CUSUM laws are those of rows uncorrelated in time; agent.monitor.laws)."""
    rng = np.random.default_rng(42)
    e = rng.normal(size=40_003)
    x = e[3:] + 0.6 * e[2:-1] - 0.5 * e[:-3]
    assert float(long_run_inflation(x)[0]) > 2.0
    assert float(long_run_inflation(x, ar_order=ORDER)[0]) == 1.0


def test_the_prewhitened_estimate_keeps_what_the_ar1_one_got_right() -> None:
    """White noise, an AR(1) of 0.7, and a slow wander (0.97) under fast noise, whose lag 1
    hides most of its long-run variance: the same truths as the AR(1) prewhitening meets."""
    rng = np.random.default_rng(34)
    n = 40_000
    white = rng.normal(size=n)
    ar = ar_series(rng, n, 0.7)
    mixture = math.sqrt(0.3) * ar_series(rng, n, 0.97) + math.sqrt(0.7) * rng.normal(size=n)
    est = long_run_inflation(np.column_stack([white, ar, mixture]), ar_order=ORDER)
    assert est[0] == pytest.approx(1.0, abs=0.05)
    assert est[1] == pytest.approx(1.7 / 0.3, rel=0.12)
    assert est[2] == pytest.approx(0.3 * 1.97 / 0.03 + 0.7, rel=0.35)


def coupled_var(rng: np.random.Generator, n: int, tags: int = 8) -> np.ndarray:
    """A coupled VAR(1) in the way of bench/line_streams.VarLine: each tag driven by its own past
    and two others', spectral radius 0.86, correlated innovations."""
    a = np.eye(tags) * rng.uniform(0.4, 0.9, tags)
    for i in range(tags):
        others = rng.choice([j for j in range(tags) if j != i], size=2, replace=False)
        a[i, others] = rng.uniform(-0.5, 0.5, 2)
    a *= 0.86 / float(np.abs(np.linalg.eigvals(a)).max())
    mix = np.tril(rng.uniform(-0.6, 0.6, (tags, tags)), -1) + np.eye(tags)
    e = rng.normal(size=(n + 300, tags)) @ mix.T
    x = np.zeros_like(e)
    for t in range(1, len(e)):
        x[t] = a @ x[t - 1] + e[t]
    return np.asarray(x[300:])


def test_pooled_streams_of_a_coupled_var_are_in_their_long_run_units() -> None:
    """The pooled CUSUM's streams, scaled on 4,000 reference rows, have a long-run variance near
    1 on 200,000 fresh rows of the same process (with the AR(1) estimate: 0.62, the streams'
    spread overstated)."""
    law = np.random.default_rng(44)
    process = coupled_var(law, 204_000)
    reference, fresh = process[:4000], process[4000:]
    week = 604_800.0
    section = pooled_section(reference, reference.mean(axis=0), reference.std(axis=0), 0.25,
                             (1.0, 0.2), (1.0, 0.2), week)
    matrix, centre = transform(section)
    lrv = batch_means_lrv(fresh @ matrix - centre)
    assert 0.8 < float(np.exp(np.log(lrv).mean())) < 1.25, lrv
    assert lrv.min() > 0.6, lrv

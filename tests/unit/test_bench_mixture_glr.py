"""The mixture GLR study of bench/mixture_glr.py: its statistic is the one of Xie and Siegmund
by hand, its running sums give what a direct recomputation gives (restarts after alarms
included, whatever the batches), it finds a shift of 2 of 8 iid streams, and on drift-free iid
rows it alarms about as often as its simulated law says."""

from __future__ import annotations

import math

import numpy as np

from agent.monitor import pooled
from bench.mixture_glr import MixtureGLR, glr_alarms, mixture, simulate_tail


def f(u2: float, p0: float) -> float:
    return math.log(1 - p0 + p0 * math.exp(u2 / 2))


def test_statistic_matches_a_hand_computation() -> None:
    glr = MixtureGLR(2, math.inf, p0=0.3, grid=(1, 2))
    g = glr.update(np.array([[1.0, -2.0], [3.0, 0.5]]))
    first = f(1.0, 0.3) + f(4.0, 0.3)  # one row seen: only the window of length 1
    one = f(9.0, 0.3) + f(0.25, 0.3)
    two = f(4.0 ** 2 / 2, 0.3) + f(1.5 ** 2 / 2, 0.3)  # sums 4 and -1.5 over sqrt(2)
    assert np.allclose(g, [first, max(one, two)])
    assert not np.isclose(one, two)  # the max over the windows is what was compared
    assert np.isclose(mixture(np.array([[1e4, 0.0]]), 0.1)[0], math.log(0.1) + 5e3)  # no overflow


def direct(w: np.ndarray, h: float, p0: float, grid: tuple[int, ...]) -> tuple[list[float], list[int]]:
    """G of every row from the rows themselves: windows ending at t, none reaching back to or
    before the last alarm."""
    out, alarms, last = [], [], -1
    for t in range(len(w)):
        best = 0.0
        for length in grid:
            if length <= t - last:
                u = w[t - length + 1:t + 1].sum(axis=0) / math.sqrt(length)
                best = max(best, sum(f(float(v) ** 2, p0) for v in u))
        out.append(best)
        if best > h:
            alarms.append(t)
            last = t
    return out, alarms


def test_running_sums_equal_a_direct_recomputation_whatever_the_batches() -> None:
    rng = np.random.default_rng(3)
    w = rng.standard_normal((400, 5)) + np.where(np.arange(400) >= 200, 0.5, 0.0)[:, None]
    grid = (1, 2, 4, 8, 16, 64)
    want, want_alarms = direct(w, 9.0, 0.3, grid)
    assert len(want_alarms) >= 3  # restarts are exercised
    glr = MixtureGLR(5, 9.0, p0=0.3, grid=grid)
    got = np.concatenate([glr.update(w[a:b]) for a, b in ((0, 1), (1, 8), (8, 40), (40, 237), (237, 400))])
    assert np.allclose(got, want)
    assert glr.alarms == want_alarms


def threshold_for(arl: float) -> tuple[float, float]:
    """H for ``arl`` rows on 8 independent streams (a reference mean known exactly), and the
    alarm rate a row its simulated law gives at that H."""
    peaks, horizon = simulate_tail(np.eye(8), 10 ** 12, 0.1, (1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
    h = pooled.threshold(arl, peaks, horizon, 0.5)
    over = float(np.mean(peaks > h))  # within what was simulated: the empirical chance
    return h, -math.log(1 - over) / horizon


def test_alarms_on_a_shift_of_two_of_eight_streams_and_keeps_its_law_without_one() -> None:
    h, rate = threshold_for(75_000)
    rng = np.random.default_rng(11)
    rows = 600_000
    fired = glr_alarms(MixtureGLR(8, h, p0=0.1, clip=4.0), rng.standard_normal((rows, 8)))
    expected = rows * rate  # about 8 alarms
    assert 4 <= expected <= 20
    # a loose Poisson bound (beyond 99.9% both ways)
    assert expected / 4 <= len(fired) <= 2.5 * expected + 5

    w = rng.standard_normal((2000, 8))
    w[1000:, [2, 5]] += [0.6, -0.6]  # either sign: the statistic is two-sided
    glr = MixtureGLR(8, h, p0=0.1, clip=4.0)
    glr_alarms(glr, w)
    assert not [i for i in glr.alarms if i < 1000]
    assert glr.alarms and 1000 <= glr.alarms[0] < 1150

"""The subset-scan GLR of bench/subset_glr.py: a pair's quadratic form is the hand computation,
its running sums give what a direct recomputation gives (restarts included, whatever the
batches), a shift that moves two streams along the low-variance direction of their correlation
is found sooner than by the sum of squares over the same sets at the same simulated law (and
the reverse where the shift follows the correlation), and on drift-free correlated rows it
alarms about as often as its simulated law says."""

from __future__ import annotations

import math
import statistics

import numpy as np

from agent.monitor import pooled
from bench.mixture_glr import glr_alarms
from bench.subset_glr import X0, SetScan, SubsetGLR, candidate_sets, simulate_tail

GRID = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def pen(size: int, count: int) -> float:
    return math.log(count) + (size / 2 - 1) * math.log(X0) - math.lgamma(size / 2)


def test_the_quadratic_form_of_a_pair_is_the_hand_computation() -> None:
    corr = np.array([[1.0, -0.5], [-0.5, 1.0]])
    assert candidate_sets(corr, triples=True) == [(0,), (1,), (0, 1)]
    s, length = np.array([2.0, 2.0]), 4
    # S' C^-1 S for a 2x2 correlation r: (a^2 - 2 r a b + b^2) / (1 - r^2)
    pair = (4.0 + 4.0 + 2 * 0.5 * 4.0) / (1 - 0.25)
    assert math.isclose(pair, 16.0)
    single, pair_alone = np.concatenate(SetScan(corr, [(0,), (1,), (0, 1)]).forms(s))[[0, 2]]
    assert math.isclose(single, 4.0) and math.isclose(pair_alone, pair)
    want = max(4.0 / 8 - pen(1, 2), pair / 8 - pen(2, 1))
    assert math.isclose(float(SetScan(corr, [(0,), (1,), (0, 1)]).best(s, length)), want)
    assert math.isclose(pair / 8 - pen(2, 1), want)  # the pair is what won
    plain = SetScan(corr, [(0,), (1,), (0, 1)], whiten=False).best(s, length)
    assert math.isclose(float(plain), max(4.0 / 8 - pen(1, 2), 8.0 / 8 - pen(2, 1)))
    assert float(plain) < want


def direct(w: np.ndarray, scan: SetScan, h: float) -> tuple[list[float], list[int]]:
    """G of every row from the rows themselves: windows ending at t, none reaching back to or
    before the last alarm, each set's form from its own inverse."""
    out, alarms, last = [], [], -1
    for t in range(len(w)):
        best = -math.inf
        for length in GRID:
            if length <= t - last:
                s = w[t - length + 1:t + 1].sum(axis=0)
                for group in scan.sets:
                    idx = list(group)
                    q = s[idx] @ np.linalg.solve(CORR[np.ix_(idx, idx)], s[idx])
                    count = sum(len(g) == len(group) for g in scan.sets)
                    best = max(best, q / (2 * length) - pen(len(group), count))
        out.append(best)
        if best > h:
            alarms.append(t)
            last = t
    return out, alarms


CORR = np.array([[1.0, -0.5, 0.1, 0.0], [-0.5, 1.0, -0.3, 0.0], [0.1, -0.3, 1.0, 0.25],
                 [0.0, 0.0, 0.25, 1.0]])


def test_running_sums_equal_a_direct_recomputation_whatever_the_batches() -> None:
    scan = SetScan(CORR, candidate_sets(CORR, triples=True, groups=True))
    assert {len(t) for t in scan.sets} == {1, 2, 3, 4}  # the 4: one connected group, all streams
    rng = np.random.default_rng(5)
    w = rng.standard_normal((300, 4)) @ np.linalg.cholesky(CORR).T
    w[150:, :2] += 0.5
    want, want_alarms = direct(w, scan, 6.0)
    assert len(want_alarms) >= 3  # restarts are exercised
    glr = SubsetGLR(scan, 6.0, GRID)
    got = np.concatenate([glr.update(w[a:b]) for a, b in ((0, 1), (1, 9), (9, 40), (40, 211), (211, 300))])
    assert np.allclose(got, want)
    assert glr.alarms == want_alarms


def threshold_for(scan: SetScan, corr: np.ndarray, arl: float) -> tuple[float, float]:
    """H for ``arl`` rows (a reference mean known exactly), and the alarm rate a row its
    simulated law gives at that H."""
    peaks, horizon = simulate_tail(corr, scan, 10 ** 12, GRID)
    h = pooled.threshold(arl, peaks, horizon, 0.5)
    return h, -math.log(1 - float(np.mean(peaks > h))) / horizon


def delays(scan: SetScan, h: float, corr: np.ndarray, shift: float) -> list[int]:
    """Rows from the change to the first alarm on 25 seeded streams, two streams shifted by
    ``shift`` together from row 200 (a stream with an alarm before then counts as 0)."""
    chol = np.linalg.cholesky(corr)
    out = []
    for seed in range(25):
        w = np.random.default_rng(seed).standard_normal((2200, 2)) @ chol.T
        w[200:] += shift
        fired = glr_alarms(SubsetGLR(scan, h, GRID, clip=4.0), w)
        out.append(max(0, fired[0] - 200) if fired else 2000)
    return out


def test_a_shift_against_the_correlation_is_found_sooner_than_by_the_sum_of_squares() -> None:
    medians = {}
    for r in (-0.6, 0.6):  # -0.6: the w streams of two tags of partial correlation 0.6
        corr = np.array([[1.0, r], [r, 1.0]])
        for whiten in (True, False):
            scan = SetScan(corr, candidate_sets(corr, triples=False), whiten)
            h, _ = threshold_for(scan, corr, 200_000)
            medians[r, whiten] = statistics.median(delays(scan, h, corr, 0.25))
    # along (1, 1), the low-variance direction at -0.6: the form gets 2.5 d^2 a row, the sum of
    # squares d^2
    assert medians[-0.6, True] < 0.7 * medians[-0.6, False]
    # the high-variance direction at +0.6: the sum of squares puts its weight there
    assert medians[0.6, False] <= medians[0.6, True]


def test_drift_free_alarms_keep_the_simulated_law() -> None:
    scan = SetScan(CORR, candidate_sets(CORR, triples=True))
    h, rate = threshold_for(scan, CORR, 50_000)
    rows = 400_000
    z = np.random.default_rng(17).standard_normal((rows, 4)) @ np.linalg.cholesky(CORR).T
    fired = glr_alarms(SubsetGLR(scan, h, GRID, clip=4.0), z)
    expected = rows * rate  # about 8 alarms
    assert 4 <= expected <= 20
    assert expected / 4 <= len(fired) <= 2.5 * expected + 5  # a loose Poisson bound

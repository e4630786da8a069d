"""The pooled mean CUSUM (agent.monitor.pooled, agent.monitor.cusum.Pool): the textbook
recursion and its exact detection index, its false-alarm law on drift-free rows, state/restore,
the decorrelation, and the monitor naming the streams that moved together."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.monitor.cusum import POOLED, Cusum, Pool
from agent.monitor.monitor import ModelMonitor
from agent.monitor.pooled import (
    long_run_correlation,
    pool_of,
    pooled_section,
    prewhitened_correlation,
    simulate_tail,
    threshold,
)
from tests.helpers.synthetic import batches, logistic_scores, manifest_for

K, B = 0.25, 4.0


def textbook(x: np.ndarray, h: float) -> list[int]:
    """S+ and S- per column, P = sum max(0, S - b); alarm when P > h, then all sums restart."""
    cols = x.shape[1]
    pos, neg = np.zeros(cols), np.zeros(cols)
    fired = []
    for i, row in enumerate(x):
        pos = np.maximum(0.0, pos + row - K)
        neg = np.maximum(0.0, neg - row - K)
        p = np.maximum(0.0, np.concatenate([pos, neg]) - B).sum()
        if p > h:
            fired.append(i)
            pos[:], neg[:] = 0.0, 0.0
    return fired


def pooled_alarms(cusum: Cusum, x: np.ndarray, size: int) -> list[int]:
    out = []
    for start in range(0, len(x), size):
        out += [d.index for d in cusum.update(x[start:start + size])
                if d.column == POOLED and d.level == "alarm"]
    return out


def bank(cols: int, h: float, quiet: int | None = None) -> Cusum:
    # the pooled columns' own levels out of reach: only P alarms
    return Cusum(np.zeros(cols), np.ones(cols), K, 1e9, False, 1e9, quiet=quiet,
                 pool=Pool(0, cols, B, h, 0.6 * h))


def test_pooled_statistic_matches_the_textbook_recursion_and_its_exact_index() -> None:
    rng = np.random.default_rng(21)
    x = rng.normal(size=(4000, 6))
    x[3000:, [0, 2, 4]] += 0.5  # three of six streams shift half a standard deviation
    expected = textbook(x, 30.0)
    assert next(i for i in expected if i >= 3000) == 3030  # 30 rows after the change
    for size in (1, 13, 64, 4000):
        assert pooled_alarms(bank(6, 30.0), x, size) == expected


def test_pooled_alarm_names_the_streams_that_moved_and_estimates_the_start() -> None:
    rng = np.random.default_rng(22)
    x = rng.normal(size=(2000, 8))
    x[1500:, [1, 6]] += 0.7
    cusum = bank(8, 30.0)
    alarm = next(d for d in cusum.update(x) if d.level == "alarm" and d.index >= 1500)
    assert sorted(cusum.pool_streams[alarm.index][:2]) == [1, 6]
    assert 1470 <= alarm.start_index <= 1520


def test_state_restore_continues_exactly() -> None:
    rng = np.random.default_rng(23)
    x = rng.normal(size=(6000, 5))
    x[4000:, :2] += 0.6
    whole = [(d.index, d.column, d.level) for d in bank(5, 25.0, quiet=200).update(x)]
    first = bank(5, 25.0, quiet=200)
    got = [(d.index, d.column, d.level) for d in first.update(x[:3500])]
    second = bank(5, 25.0, quiet=200)
    second.restore({k: np.asarray(v).copy() for k, v in first.state().items()})
    got += [(d.index, d.column, d.level) for d in second.update(x[3500:])]
    assert sorted(got) == sorted(whole)
    assert any(c == POOLED and lv == "warning" for _, c, lv in whole)  # warnings are kept too


def poisson_interval(lam: float, p: float = 0.999) -> tuple[int, int]:
    """Central interval of Poisson(lam) holding probability p."""
    cdf, term, k = 0.0, math.exp(-lam), 0
    lo = hi = None
    while hi is None:
        cdf += term
        if lo is None and cdf > (1 - p) / 2:
            lo = k
        if cdf >= 1 - (1 - p) / 2:
            hi = k
        k += 1
        term *= lam / k
    return int(lo), hi


def test_false_alarm_law_on_drift_free_rows_agrees_with_its_share() -> None:
    """A budget share that expects 25 alarms in 400,000 drift-free iid rows (ARL 16,000): the
    count is within the 99.9% Poisson interval."""
    rng = np.random.default_rng(24)
    reference = rng.normal(size=(4000, 6))
    week = 604_800.0
    arl = 16_000.0
    section = pooled_section(reference, reference.mean(axis=0), reference.std(axis=0), K,
                             (week / 1e9, week / 1e9), (week / arl * 5, week / arl), week)
    cusum = Cusum(np.zeros(6), np.ones(6), K, section["stream_h_alarm"], False,
                  section["stream_h_warn"], clip=np.array(section["clip"]), pool=pool_of(section, 0, 6))
    fresh = rng.normal(size=(400_000, 6))
    z = ((fresh - np.array(section["mean"])) / np.array(section["std"])) @ np.array(section["matrix"])
    count = len(pooled_alarms(cusum, z, 4096))
    lo, hi = poisson_interval(len(fresh) / arl)
    assert lo <= count <= hi, (count, lo, hi)


def test_threshold_extrapolates_along_the_tail_never_faster_than_one_side() -> None:
    rng = np.random.default_rng(25)
    # maxima with an exactly exponential tail of rate 0.5 = 2k: P(max > H) = e^(-0.5 (H - 10))
    peaks = np.sort(10 + rng.exponential(2.0, 4000))
    for arl in (1e6, 1e8):
        h = threshold(arl, peaks, 1000.0, K)
        assert h == pytest.approx(10 + 2 * math.log(arl / 1000.0), abs=1.0)
    steep = np.sort(10 + rng.exponential(0.5, 4000))  # a tail faster than one side can decay
    assert threshold(1e8, steep, 1000.0, K) >= 10 + 2 * math.log(1e8 / 1000.0) - 2.0


def test_simulated_tail_is_reproducible() -> None:
    a = simulate_tail(np.eye(4), K, B, 4000)
    b = simulate_tail(np.eye(4), K, B, 4000)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_decorrelated_residual_sees_one_tag_leaving_its_group() -> None:
    """Two tags sharing a slow factor, the first shifted 0.6 sd alone: seen by the CUSUMs of the
    tags decorrelated from each other, and named by the pooled CUSUM."""
    rng = np.random.default_rng(26)

    def tags(n: int) -> np.ndarray:
        f = np.zeros(n)
        e = rng.normal(size=n) * math.sqrt(1 - 0.8**2)
        for t in range(1, n):
            f[t] = 0.8 * f[t - 1] + e[t]
        return np.column_stack([f + 0.5 * rng.normal(size=n), f + 0.5 * rng.normal(size=n),
                                rng.normal(size=(n, 3))])

    train = tags(5000)
    monitor = ModelMonitor(manifest_for(train, logistic_scores(train)))
    x = tags(3000)
    x[2000:, 0] += 0.6 * x[:, 0].std()
    events = []
    for samples, preds, conf in batches(x, logistic_scores(x), 64):
        events += monitor.update(samples, preds, conf)
    first = next(e for e in events if e.level == "alarm")
    # the residuals of both tags of the pair move (each is the tag against the other): the pooled
    # CUSUM, with half of the inputs' budget, adds them up and alarms first, 49 rows after the
    # change (48 before its law's correlation was prewhitened; a residual's own CUSUM needed 53
    # when the pooled one had a stream's share), naming the tag whose own level moved first; its
    # alarm restarts the residuals' sums
    assert (first.index, first.detector) == (2049, "pooled_cusum")
    assert first.top_features[:2] == ["f0", "f1"] and first.start_index == 2000


def ringing(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """AR(2) tags ringing with a period of 25 rows (a control loop), one shared disturbance."""
    a1, a2 = 2 * 0.9 * math.cos(2 * math.pi / 25), -0.81
    e = rng.normal(size=(rows + 200, cols)) + 0.5 * rng.normal(size=(rows + 200, 1))
    x = np.zeros_like(e)
    for t in range(2, len(e)):
        x[t] = a1 * x[t - 1] + a2 * x[t - 2] + e[t]
    return x[200:]


def test_simulated_correlation_of_slow_streams_is_not_shrunk_toward_none() -> None:
    """The law's correlation of the pooled streams, from 4,000 reference rows of ringing tags:
    prewhitened, within 0.15 of what 200,000 rows say; the Bartlett estimate at the inputs'
    bandwidth (hundreds of lags), which the simulation used before, is off by more than 0.25
    somewhere (and then P alarmed 3.2 times as often as its share on this process)."""
    rng = np.random.default_rng(64)
    x = ringing(rng, 204_000, 5)
    ref = x[:4000]
    section = pooled_section(ref, ref.mean(axis=0), ref.std(axis=0), K, (1.0, 0.2), (1.0, 0.2), 604_800.0)
    matrix = np.asarray(section["matrix"]) / np.asarray(section["std"])[:, None]
    z_ref, z_fresh = (ref - ref.mean(axis=0)) @ matrix, (x[4000:] - ref.mean(axis=0)) @ matrix
    truth = long_run_correlation(z_fresh, 400)
    assert section["lags"] > 100  # the inputs' bandwidth on this slow process
    assert np.abs(prewhitened_correlation(z_ref) - truth).max() < 0.15
    assert np.abs(long_run_correlation(z_ref, section["lags"]) - truth).max() > 0.25

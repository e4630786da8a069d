"""The known-change oracle of bench/oracle.py on a simulated VAR(1) line whose law it can fit:
its log-likelihood ratio has the means the theory says, it keeps the false-alarm budget on a
long drift-free run, and it finds the shift about as fast as its information allows."""

from __future__ import annotations

import numpy as np
import pytest

from bench import oracle

TAGS = 4
A = np.array([[0.8, 0.1, 0.0, 0.0],
              [0.0, 0.7, 0.15, 0.0],
              [0.1, 0.0, 0.85, 0.0],
              [0.0, 0.0, 0.1, 0.75]])
CHOL = np.array([[1.0, 0.0, 0.0, 0.0],
                 [0.4, 0.9, 0.0, 0.0],
                 [0.0, 0.3, 0.95, 0.0],
                 [0.2, 0.0, 0.0, 0.98]])
MEAN = np.array([50.0, 200.0, 7.0, 900.0])
UNITS = np.array([0.5, 3.0, 0.05, 10.0])  # each tag's own units: the oracle works in them
DELTA = np.array([0.0, 1.0, 0.0, 1.2]) * UNITS  # a shift of two tags


def simulate(rows: int, seed: int, change: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((rows + 200, TAGS)) @ CHOL.T
    z = np.zeros_like(e)
    for t in range(1, len(z)):
        z[t] = A @ z[t - 1] + e[t]
    x = MEAN + UNITS * z[200:]
    if change is not None:
        x[change:] += DELTA
    return np.asarray(x)


@pytest.fixture(scope="module")
def fitted() -> oracle.Oracle:
    return oracle.fit(simulate(4000, seed=1), 3000, DELTA)


def test_the_steady_innovation_mean_is_i_minus_a_times_delta(fitted: oracle.Oracle) -> None:
    true_m = (np.eye(TAGS) - A) @ (DELTA / fitted.scale)
    assert np.allclose(fitted.means[-1], true_m, atol=0.05)
    assert np.allclose(fitted.means[0], DELTA / fitted.scale)


def test_llr_means_are_minus_and_plus_kl(fitted: oracle.Oracle) -> None:
    kl = fitted.kl
    assert 0.03 < kl < 0.3  # a small shift: the test is one of many rows
    clean = fitted.llr(simulate(30_000, seed=2))[:, -1]
    shifted = fitted.llr(simulate(30_000, seed=3, change=0))[oracle_rows(fitted):, -1]
    # sd of these means about sqrt(2 KL / 30,000) < 0.005; taking m = delta (forgetting the
    # process's memory) would put the shifted mean near delta' S^-1 (m - delta / 2) < 0
    assert clean.mean() == pytest.approx(-kl, rel=0.2)
    assert shifted.mean() == pytest.approx(kl, rel=0.2)
    assert fitted.held_out_mean == pytest.approx(-kl, abs=4 * np.sqrt(2 * kl / 1000))


def oracle_rows(o: oracle.Oracle) -> int:
    return o.order  # the rows whose innovations still carry part of the jump


def test_no_alarm_on_fifty_thousand_drift_free_rows(fitted: oracle.Oracle) -> None:
    assert 8 < fitted.h < 25  # a week's budget: about ln(604,800) = 13.3
    assert fitted.alarms(simulate(50_000, seed=4)) == []


def test_the_partial_terms_speed_it_up_on_the_change_rows_only(fitted: oracle.Oracle) -> None:
    x = simulate(4000, seed=30, change=2000)
    table = fitted.llr(x)  # row i is stream row i + p
    jump = table[2000 - fitted.order, 0]
    assert jump > table[2000 - fitted.order, -1]  # the change row shows the whole delta
    assert fitted.alarms(simulate(50_000, seed=4), change=None) == fitted.alarms(
        simulate(50_000, seed=4), change=60_000)  # a change beyond the stream: the steady CUSUM


def test_it_finds_the_shift_in_a_few_multiples_of_h_over_kl(fitted: oracle.Oracle) -> None:
    budget = fitted.h / fitted.kl
    delays = []
    for seed in range(5, 15):
        delay, _ = oracle.delay(fitted, simulate(2000 + 2000, seed=seed, change=2000), 2000)
        assert delay is not None
        delays.append(delay)
    assert max(delays) < 3 * budget
    assert np.median(delays) < 1.5 * budget
    assert np.median(delays) > 0.2 * budget  # not a wrong, far too confident llr


def test_known_shift_reads_the_shift_from_the_same_seeds_streams() -> None:
    clean = simulate(3000, seed=20)
    shifted = clean.copy()
    shifted[1000:] += DELTA
    assert np.allclose(oracle.known_shift(shifted, clean, 1000), DELTA)
    with pytest.raises(ValueError):
        oracle.known_shift(shifted, simulate(3000, seed=21), 1000)

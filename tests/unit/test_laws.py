"""The CUSUM laws of agent.monitor.laws on increments whose chain is ill-conditioned: a model
with almost no mistakes gives outcome log ratios far below any threshold, and the Brook-Evans
solve returned -3e17 for one (``make bench``'s pipeline_models bundle, 2026-12-02): the bundle
build then failed with a math domain error."""

from __future__ import annotations

import math

import numpy as np

from agent.monitor.laws import CHAIN_ARL_MAX, chain_arl, empirical_cusum_h


def near_perfect_model_ratios() -> np.ndarray:
    """750 held-out outcome log ratios of a model with few mistakes: most a small negative step,
    a few small positive ones (the shape of the failing bundle's)."""
    rng = np.random.default_rng(5)  # (one of the seeds whose chain the old solve made negative)
    x = -0.103 + 0.003 * rng.random(750)
    x[:19] = rng.uniform(0.0, 0.48, 19)
    return x


def cdf_of(x: np.ndarray):  # type: ignore[no-untyped-def]
    s = np.sort(x)
    return lambda v: np.searchsorted(s, v, side="right") / len(s)


def test_a_chain_that_almost_never_reaches_its_level_is_longer_than_any_budget_not_negative() -> None:
    cdf = cdf_of(near_perfect_model_ratios())
    runs = [chain_arl(h, cdf, step=5 / 200) for h in (0.5, 1.0, 2.0, 5.0)]
    assert all(r > 0 for r in runs) and runs == sorted(runs)
    assert runs[-1] == math.inf and 0 < runs[0] < CHAIN_ARL_MAX


def test_the_threshold_of_such_outcomes_is_a_finite_positive_number() -> None:
    x = near_perfect_model_ratios()
    for arl in (483_840.0, 1.5e8):
        h = empirical_cusum_h(arl, x)
        assert math.isfinite(h) and 0 < h < 5


def test_a_well_conditioned_chain_keeps_its_figure() -> None:
    # Gaussian increments of mean -0.5: the textbook CUSUM with k = 0.5, h = 4 has ARL ~ 336
    # (Siegmund's approximation with the 0.583 correction)
    rng = np.random.default_rng(1)
    x = rng.normal(-0.5, 1.0, 200_000)
    run = chain_arl(4.0, cdf_of(x), step=0.05)
    assert 250 < run < 450


def test_the_bernoulli_threshold_survives_a_chain_beyond_what_it_can_say() -> None:
    from agent.monitor.laws import bernoulli_h

    for p0 in (0.01, 0.2, 0.45):  # the error rates the label calibration uses (at least 1%)
        h = bernoulli_h(6e8, p0, 2 * p0)
        assert math.isfinite(h) and h >= 3.0

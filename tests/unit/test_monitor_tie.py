"""The tie CUSUM (agent.monitor.tie): its increment is the textbook log-likelihood ratio, it
watches only inputs the others predict, it stays quiet on long drift-free rows of a wandering
correlated group, and it finds a tag that leaves its group (same marginal law) at an exact index."""

from __future__ import annotations

import math

import numpy as np

from agent.monitor.monitor import ModelMonitor
from agent.monitor.tie import TIE_MIN, increments
from tests.helpers.synthetic import batches, logistic_scores, manifest_for


def group_line(rows: int, seed: int, broken_from: int | None = None) -> np.ndarray:
    """Four tags on one AR(1) factor (rho 0.8) plus their own noise, and two lone tags; from
    ``broken_from`` tag 2 follows a factor of its own (its marginal law unchanged)."""
    rng = np.random.default_rng(seed)

    def ar1(n: int) -> np.ndarray:
        out = np.empty(n)
        out[0] = rng.normal()
        e = rng.normal(size=n) * math.sqrt(1 - 0.64)
        for t in range(1, n):
            out[t] = 0.8 * out[t - 1] + e[t]
        return out

    factor = ar1(rows)
    x = np.column_stack([0.8 * factor + 0.6 * rng.normal(size=rows) for _ in range(4)]
                        + [rng.normal(size=rows) for _ in range(2)])
    if broken_from is not None:
        own = ar1(rows)
        x[broken_from:, 2] = 0.8 * own[broken_from:] + 0.6 * rng.normal(size=rows - broken_from)
    return x


def test_increment_is_the_log_likelihood_ratio_of_its_two_gaussian_predictions() -> None:
    rng = np.random.default_rng(3)
    u = rng.normal(size=(50, 2))
    z2 = rng.normal(size=(50, 2)) ** 2
    phi, sigma, log_ratio = np.array([0.5, -0.2]), np.array([1.1, 0.9]), np.array([-0.3, -0.05])
    got = increments(z2, u, np.array([0.4, 0.1]), phi, sigma, log_ratio, 9.0)
    prev = np.vstack([[0.4, 0.1], u[:-1]])
    w2 = np.minimum(((u - phi * prev) / sigma) ** 2, 9.0)
    # log N(own-past prediction) - log N(the others' prediction), both per unit variance
    assert np.allclose(got, 0.5 * (z2 - w2) + log_ratio)


def test_watches_the_grouped_tags_only_and_stays_quiet_on_drift_free_rows() -> None:
    train = group_line(5000, 1)
    manifest = manifest_for(train, logistic_scores(train))
    tie = (manifest.model_extra or {})["monitoring"]["tie"]
    assert tie["columns"] == [0, 1, 2, 3]  # the lone tags have no tie to lose
    assert max(tie["drift"]) <= -TIE_MIN and tie["law"].startswith("Markov chain")
    assert (manifest.model_extra or {})["monitoring"]["budget_split"]["streams"]["tie_cusum"] == 4
    monitor = ModelMonitor(manifest)
    line = group_line(100_000, 2)  # 28 hours: the tie CUSUMs' share expects 0.02 alarms
    fired = [e for s, p, c in batches(line, logistic_scores(line), 64)
             for e in monitor.update(s, p, c) if e.detector == "tie_cusum" and e.level == "alarm"]
    assert fired == []
    assert set(monitor.metrics()["tie_cusum"]) == {"f0", "f1", "f2", "f3"}


def test_a_tag_that_leaves_its_group_is_found_at_an_exact_index() -> None:
    train = group_line(5000, 1)
    manifest = manifest_for(train, logistic_scores(train))
    line = group_line(6000, 4, broken_from=3000)
    for size in (64, 500):
        monitor = ModelMonitor(manifest)
        alarms = [(e.index, e.feature, e.start_index)
                  for s, p, c in batches(line, logistic_scores(line), size)
                  for e in monitor.update(s, p, c) if e.detector == "tie_cusum" and e.level == "alarm"]
        assert alarms[0] == (3030, "f2", 3001), alarms  # 30 rows after, its start 1 off


def test_a_short_reference_raises_no_tie_alarm_on_drift_free_rows() -> None:
    """A retrained model's reference can be a few hundred rows: prediction coefficients fitted
    on them predict those rows better than the line's, and the increments' small in-control
    drift must come from rows the fit did not see (`make demo` raised a false tie alarm on its
    retrained model before the cross-fit)."""
    train = group_line(300, 5)
    manifest = manifest_for(train, logistic_scores(train))
    monitor = ModelMonitor(manifest)
    line = group_line(50_000, 6)
    fired = [e.index for s, p, c in batches(line, logistic_scores(line), 64)
             for e in monitor.update(s, p, c) if e.detector == "tie_cusum" and e.level == "alarm"]
    assert fired == []

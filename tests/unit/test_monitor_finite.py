"""NaN and infinite values fed to the monitor directly (replay, an embedding program): they are
held at the column's last finite value and counted, and no detector is poisoned by them. Before
the guard, one NaN made every later CUSUM sum NaN and one infinity latched an alarm."""

from __future__ import annotations

import numpy as np

from agent.monitor.detectors import Cusum
from agent.monitor.finite import FiniteGuard
from agent.monitor.monitor import ModelMonitor
from tests.helpers.synthetic import batches, logistic_scores, manifest_for


def test_a_non_finite_value_takes_the_last_finite_value_of_its_column() -> None:
    guard = FiniteGuard(np.array([10.0, 20.0]))
    values = np.array([[np.nan, 1.0], [2.0, np.inf], [-np.inf, np.nan]])
    ok = guard.clean(values)
    assert values.tolist() == [[10.0, 1.0], [2.0, 1.0], [2.0, 1.0]]
    assert ok is not None and ok.tolist() == [[False, True], [True, False], [False, False]]
    assert guard.replaced.tolist() == [2, 2]
    later = np.array([[np.nan, 5.0]])
    guard.clean(later)
    assert later.tolist() == [[2.0, 5.0]]  # across batches
    assert guard.clean(np.array([[3.0, 4.0]])) is None  # the common batch: nothing to say


def test_a_missing_cell_leaves_its_cusum_sums_as_they_were() -> None:
    bank = Cusum(np.zeros(2), np.ones(2), 0.25, 100.0)
    bank.update(np.array([[2.0, 2.0], [2.0, 2.0]]))
    before = bank.score.copy()
    bank.update(np.array([[9.0, 2.0], [9.0, 2.0]]), missing=np.array([[True, False], [True, False]]))
    assert bank.score[0] == before[0] and bank.score[1] > before[1]


def test_nan_and_infinities_poison_no_detector_and_are_counted() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(4000, 5))
    ref[:, 1] += 0.6 * ref[:, 0]
    manifest = manifest_for(ref, logistic_scores(ref))
    clean_rows = rng.normal(size=(8000, 5))
    clean_rows[:, 1] += 0.6 * clean_rows[:, 0]
    dirty = clean_rows.copy()
    cells = rng.random(dirty[:6000].shape) < 0.01
    dirty[:6000][cells] = rng.choice([np.nan, np.inf, -np.inf], size=int(cells.sum()))
    dirty[1000:1050] = np.nan  # a gateway that lost every tag for 50 samples
    dirty[6000:, 2] += 1.0  # then a real shift of one sd on one tag
    score = logistic_scores(clean_rows)
    score[3000:3010] = np.nan

    monitor = ModelMonitor(manifest)
    alarms = []
    for samples, preds, conf in batches(dirty, score, 64):
        events = monitor.update(samples, preds, conf)
        alarms += [e for e in events if e.level == "alarm"]
        assert np.isfinite(monitor.cusum.score).all()
        assert np.isfinite(monitor.cusum.pooled_score)
    assert not [e for e in alarms if e.index < 6000]  # held values are no evidence of drift
    assert any(e.feature == "f2" for e in alarms)  # and the shift after them is still found
    counts = monitor.metrics()["non_finite_values"]
    assert sum(counts[f"f{j}"] for j in range(5)) == int(cells.sum()) + 50 * 5 - int(cells[1000:1050].sum())
    assert counts["score"] == 10


def test_extreme_values_in_every_cell_neither_crash_nor_poison_the_monitor() -> None:
    rng = np.random.default_rng(12)
    ref = rng.normal(size=(3000, 4))
    manifest = manifest_for(ref, logistic_scores(ref))
    monitor = ModelMonitor(manifest)
    extremes = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45, 0.0, 1e30])
    for size in (1, 7, 64, 300):
        x = rng.normal(size=(size, 4))
        pick = rng.random(x.shape) < 0.2
        x[pick] = rng.choice(extremes, size=int(pick.sum()))
        score = rng.choice(np.array([0.2, 0.9, np.nan, np.inf, -1.0, 2.0]), size=size)
        for samples, preds, conf in batches(x, score, size, t0=1.7e9 + monitor.samples):
            monitor.update(samples, preds, conf)
        assert np.isfinite(monitor.cusum.score).all() and np.isfinite(monitor.psi.last).all()
    assert monitor.samples == 372
    for samples, preds, conf in batches(np.full((5, 4), np.nan), np.full(5, np.nan), 5, t0=1.8e9):
        monitor.update(samples, preds, conf)  # a batch with nothing in it: the PSI window gets no row
    assert monitor.samples == 377 and np.isfinite(monitor.cusum.score).all()

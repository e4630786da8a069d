"""Detectors on seeded synthetic streams: exact detection indices (as river's own tests do),
no false alarm on a long drift-free stream, batch-size invariance, save/restore."""

from __future__ import annotations

import numpy as np
import pytest

from agent.monitor.budget import Budget
from agent.monitor.laws import cusum_h, siegmund_arl
from agent.monitor.detectors import Cusum, RingMean, WindowCategorical, WindowPSI
from agent.monitor.monitor import ModelMonitor
from agent.monitor.state import restore_state, save_state
from tests.helpers.synthetic import batches, logistic_scores, manifest_for

CHANGE = 3000
# The budget is one false alarm per feature per week at the sample rate. At 1 Hz a 50,000-sample
# stream is 14 hours, where ~0.8 false alarms over 10 streams are the budget's own expectation;
# at 10 Hz (a fast line) it is 1.4 hours and a false alarm is unlikely: these tests use 10 Hz.
FAST_LINE = Budget(sample_rate_hz=10.0)


def alarms(events: list, kind: str | None = None) -> list[tuple[str, str, str | None, int]]:
    return [(e.kind, e.detector, e.feature, e.index) for e in events
            if e.level == "alarm" and (kind is None or e.kind == kind)]


def run(x: np.ndarray, train: np.ndarray, size: int = 64, score_fn=logistic_scores) -> list:
    monitor = ModelMonitor(manifest_for(train, score_fn(train), FAST_LINE))
    events = []
    for samples, preds, conf in batches(x, score_fn(x), size):
        events += monitor.update(samples, preds, conf)
    return events


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return np.random.default_rng(11).normal(size=(5000, 8))


def test_no_alarm_on_50000_samples_without_drift(train: np.ndarray) -> None:
    x = np.random.default_rng(12).normal(size=(50_000, 8))
    events = run(x, train, size=256)
    assert alarms(events) == []
    # warnings have a budget too: 10 per feature per week, about 0.8 expected here
    assert sum(e.level == "warning" for e in events) <= 4


def test_half_sigma_mean_shift_exact_index(train: np.ndarray) -> None:
    x = np.random.default_rng(13).normal(size=(6000, 8))
    x[CHANGE:, 2] += 0.5
    events = run(x, train)
    first = alarms(events)[0]
    assert first == ("data_drift", "cusum", "f2", 3098)
    alarm = next(e for e in events if e.level == "alarm")
    assert abs(alarm.start_index - CHANGE) <= 50  # the estimated start of the change
    assert "f2" in alarm.top_features


def test_variance_only_change_exact_index(train: np.ndarray) -> None:
    x = np.random.default_rng(14).normal(size=(6000, 8))
    x[CHANGE:, 3] *= 2.0
    # the wider spread leaves the training bins (PSI), grows the reconstruction error (PCA: the
    # features are independent here) and both one-sided sums of the two-sided CUSUM
    assert alarms(run(x, train)) == [("multivariate_drift", "pca_cusum", None, 3143),
                                     ("data_drift", "psi", "f3", 3231),
                                     ("data_drift", "cusum", "f3", 3507)]


def only_first_feature(x: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-(x[:, 0] - 2.0))))


def test_broken_correlation_only_multivariate_fires() -> None:
    rng = np.random.default_rng(15)
    common = rng.normal(size=(5000, 1))
    train = np.column_stack([common, common + 0.1 * rng.normal(size=(5000, 1)),
                             rng.normal(size=(5000, 6))])
    a = rng.normal(size=(4000, 1))
    b = a + 0.1 * rng.normal(size=(4000, 1))
    b[CHANGE:] = rng.normal(size=(1000, 1)) * np.sqrt(1.01)  # same marginal, no longer tied to a
    x = np.column_stack([a, b, rng.normal(size=(4000, 6))])
    events = run(x, train, score_fn=only_first_feature)
    fired = alarms(events)
    assert fired == [("multivariate_drift", "pca_cusum", None, 3010)]
    event = next(e for e in events if e.level == "alarm")
    assert set(event.top_features[:2]) == {"f0", "f1"}  # the pair whose tie broke


def test_error_rate_rise_on_labels_exact_index() -> None:
    train = np.random.default_rng(16).normal(size=(2000, 4))
    monitor = ModelMonitor(manifest_for(train, logistic_scores(train), FAST_LINE, accuracy=0.9))
    rng = np.random.default_rng(17)
    errors = np.concatenate([rng.random(CHANGE) < 0.10, rng.random(3000) < 0.30])
    truth = np.ones(len(errors))
    predicted = np.where(errors, 0.0, 1.0)
    events = []
    for start in range(0, len(errors), 50):
        idx = np.arange(start, min(len(errors), start + 50))
        events += monitor.on_labels(idx, predicted[idx], truth[idx])
    fired = alarms(events)
    assert fired == [("performance", "error_cusum", None, 3177)]
    assert monitor.metrics()["rolling_accuracy"] < 0.8


@pytest.mark.parametrize("size", [1, 7, 100, 6000])
def test_results_do_not_depend_on_batch_size(train: np.ndarray, size: int) -> None:
    x = np.random.default_rng(13).normal(size=(6000, 8))
    x[CHANGE:, 2] += 0.5
    reference = [(e.kind, e.detector, e.feature, e.level, e.index) for e in run(x, train, size=64)]
    assert [(e.kind, e.detector, e.feature, e.level, e.index) for e in run(x, train, size=size)] == reference


def test_state_saved_and_restored_gives_the_same_result(train: np.ndarray, tmp_path) -> None:
    x = np.random.default_rng(13).normal(size=(6000, 8))
    x[CHANGE:, 2] += 0.5
    manifest = manifest_for(train, logistic_scores(train), FAST_LINE)
    whole = ModelMonitor(manifest)
    expected = []
    for s, p, c in batches(x, logistic_scores(x), 64):
        expected += whole.update(s, p, c)
    first = ModelMonitor(manifest)
    got = []
    for s, p, c in batches(x[:2900], logistic_scores(x[:2900]), 64):
        got += first.update(s, p, c)
    save_state(tmp_path / "state.npz", first, "sha-1")
    second = ModelMonitor(manifest)  # a restarted agent
    assert restore_state(tmp_path / "state.npz", second, "sha-1")
    rest = x[2900:]
    for s, p, c in batches(rest, logistic_scores(rest), 64, t0=1.7e9 + 2900):
        got += second.update(s, p, c)
    fields = [(e.kind, e.detector, e.feature, e.level, e.index, e.start_index) for e in expected]
    assert [(e.kind, e.detector, e.feature, e.level, e.index, e.start_index) for e in got] == fields
    assert not restore_state(tmp_path / "state.npz", ModelMonitor(manifest), "another-bundle")


def test_cusum_matches_the_textbook_recursion() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 3))
    x[2000:, 1] += 0.5
    expected = []
    pos = np.zeros(3)
    neg = np.zeros(3)
    for i, row in enumerate(x):
        pos = np.maximum(0, pos + row - 0.5)
        neg = np.maximum(0, neg - row - 0.5)
        for c in range(3):
            if pos[c] > 8 or neg[c] > 8:
                expected.append((i, c))
                pos[c] = neg[c] = 0
    for size in (1, 13, 3000):
        cusum = Cusum(np.zeros(3), np.ones(3), 0.5, 8.0, h_warn=100.0)
        got = []
        for start in range(0, 3000, size):
            got += [(d.index, d.column) for d in cusum.update(x[start:start + size])]
        assert got == expected


def test_psi_ring_buffer_equals_direct_computation() -> None:
    rng = np.random.default_rng(2)
    edges = np.array([[-1.0, 0.0, 1.0], [0.0, 1.0, np.inf]])
    props = np.array([[0.1, 0.3, 0.3, 0.3], [0.2, 0.5, 0.3, 0.0]])
    psi = WindowPSI(edges, props, window=100, every=10)
    x = rng.normal(size=(350, 2))
    last = psi.update(x)[-1]
    assert last[0] == 349
    window = x[250:350]
    ref = np.maximum(props, 1e-4) / np.maximum(props, 1e-4).sum(axis=1, keepdims=True)
    for col in range(2):
        e = edges[col][np.isfinite(edges[col])]
        counts = np.bincount(np.searchsorted(e, window[:, col], side="right"), minlength=4)[:4]
        cur = np.maximum(counts / 100, 1e-4)
        assert last[1][col] == pytest.approx(float(((cur - ref[col]) * np.log(cur / ref[col])).sum()))


def test_categorical_js_distance_and_unseen_rate() -> None:
    rng = np.random.default_rng(3)
    det = WindowCategorical([np.array([1.0, 2.0, 3.0])], np.array([[0.5, 0.3, 0.2, 0.0]]), 200, 20)
    same = rng.choice([1.0, 2.0, 3.0], p=[0.5, 0.3, 0.2], size=(400, 1))
    assert det.update(same)[-1][1][0] < 0.1
    shifted = rng.choice([1.0, 2.0, 3.0, 9.0], p=[0.2, 0.2, 0.3, 0.3], size=(400, 1))
    assert det.update(shifted)[-1][1][0] > 0.3
    assert 0.2 < det.unseen_rate[0] < 0.4  # category 9 was never seen in training


def test_ring_mean_is_exact_over_batches() -> None:
    values = np.random.default_rng(4).random(10_000)
    ring = RingMean(300)
    for start in range(0, len(values), 37):
        ring.update(values[start:start + 37])
    assert ring.mean == pytest.approx(values[-300:].mean())


def test_thresholds_follow_the_budget() -> None:
    week = Budget().samples_per_week
    h = cusum_h(week, 0.25)
    assert siegmund_arl(h, 0.25) / 2 == pytest.approx(week, rel=1e-3)
    assert cusum_h(week * 10, 0.25) > h  # fewer false alarms allowed -> higher threshold


def test_categorical_input_mix_change_and_unseen_codes() -> None:
    rng = np.random.default_rng(21)
    train = np.column_stack([rng.normal(size=(5000, 3)),
                             rng.choice([1.0, 2.0, 3.0], p=[0.6, 0.3, 0.1], size=5000)])
    manifest = manifest_for(train, logistic_scores(train), FAST_LINE, categorical={"f3"})
    assert manifest.inputs[3].kind == "categorical"
    monitor = ModelMonitor(manifest)
    assert monitor.names == ["f0", "f1", "f2"]  # PSI, CUSUM and PCA see only numeric inputs
    x = np.column_stack([rng.normal(size=(6000, 3)),
                         np.where(np.arange(6000) < CHANGE,
                                  rng.choice([1.0, 2.0, 3.0], p=[0.6, 0.3, 0.1], size=6000),
                                  rng.choice([1.0, 2.0, 7.0], p=[0.3, 0.3, 0.4], size=6000))])
    events = []
    for samples, preds, conf in batches(x, logistic_scores(x), 64):
        events += monitor.update(samples, preds, conf)
    assert alarms(events, "data_drift")[0][:3] == ("data_drift", "js", "f3")
    first = next(e for e in events if e.detector == "js" and e.level == "alarm")
    assert first.index == 3039
    assert monitor.metrics()["unseen_category_rate"]["f3"] > 0.3  # code 7 never seen in training

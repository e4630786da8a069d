"""The innovation GLR (agent.monitor.innovation): its exact detection index against a plain
re-computation, the same events whatever the batch size and across a snapshot, its false
alarms within its share of the budget on drift-free rows (heavy-tailed ones too), and a model
monitor that raises it with the shifted tags named and the change's start estimated."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent.models.bundle import Manifest
from agent.monitor import budget as budgets
from agent.monitor import innovation
from agent.monitor.budget import Budget
from agent.monitor.calibrate import calibrate
from agent.monitor.innovation import InnovationGLR, innovation_section
from agent.monitor.monitor import ModelMonitor
from agent.monitor.profile import build_profile
from tests.helpers.synthetic import batches, logistic_scores

TAGS = 6
WEEK = 10_000  # samples per week in the calibration tests: many weeks in few rows


def coupled_process(rows: int, seed: int, noise: str = "normal") -> np.ndarray:
    """A VAR(1) of six tags coupled through their dynamics (each tag pushed by the one before),
    with its own operating points and spreads."""
    rng = np.random.default_rng(seed)
    a = 0.6 * np.eye(TAGS) + 0.3 * np.eye(TAGS, k=-1)
    if noise == "laplace":
        e = rng.laplace(size=(rows, TAGS)) / np.sqrt(2)
    else:
        e = rng.normal(size=(rows, TAGS))
    x = np.zeros((rows, TAGS))
    for t in range(1, rows):
        x[t] = a @ x[t - 1] + e[t]
    return x * np.arange(1, TAGS + 1) + 50.0


def section(history: np.ndarray, share: float = 0.13) -> dict[str, Any]:
    rates = (5 * share, share)  # warnings and alarms per week of the detector
    return innovation_section(history, 1000, rates, WEEK)


def plain_glr(spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """G of every row, computed the slow, obvious way: every window summed afresh."""
    z = (x - np.array(spec["centre"])) / np.array(spec["scale"])
    coef = np.array(spec["coef"])
    g = np.zeros(len(z))
    u = np.zeros_like(z)
    for t in range(2, len(z)):
        e = z[t] - (coef[0] + z[t - 1] @ coef[1:TAGS + 1] + z[t - 2] @ coef[TAGS + 1:])
        u[t] = np.clip(e @ np.array(spec["whiten"]), -4, 4)
    for t in range(len(z)):
        for window in spec["windows"]:
            if window <= t + 1:
                s = u[t - window + 1:t + 1].sum(axis=0)
                g[t] = max(g[t], float(s @ s) / (2 * window))
    return g


def test_the_alarm_is_at_the_exact_row_the_statistic_crosses_its_level() -> None:
    spec = section(coupled_process(4000, 1))
    x = coupled_process(1500, 2)
    x[1000:, 1] += 0.5 * 2  # half a standard deviation of the innovations' scale on two tags
    x[1000:, 4] -= 0.5 * 5
    g = plain_glr(spec, x)
    expected = int(np.argmax(g > spec["h_alarm"]))
    assert g[expected] > spec["h_alarm"] and expected > 1000
    detector = InnovationGLR(spec)
    alarms = [d for d in detector.update(x) if d.level == "alarm"]
    assert alarms[0].index == expected
    assert alarms[0].score == pytest.approx(g[expected], rel=1e-9)
    # the window that gave G starts near the change
    assert 900 <= alarms[0].start_index <= expected
    # named first: a shifted tag (at the first alarm the shift is barely seen, so the second
    # name is as likely noise: the estimate of each tag's move has a standard error of 0.13 sd
    # over a window of 292 rows, the shifts are 0.34 and 0.37 sd)
    assert detector.top[expected][0][0] in {1, 4}


def test_the_same_events_whatever_the_batch_size_and_across_a_snapshot() -> None:
    spec = section(coupled_process(4000, 3))
    x = coupled_process(6000, 4)
    x[2000:, [0, 2]] += [1.0, 1.5]
    whole = [(d.index, d.level, d.start_index) for d in InnovationGLR(spec, quiet=300).update(x)]
    assert [lvl for _, lvl, _ in whole].count("alarm") >= 2
    assert any(lvl == "warning" for _, lvl, _ in whole)
    for size in (1, 7, 64, 1000):
        detector = InnovationGLR(spec, quiet=300)
        got = []
        for start in range(0, len(x), size):
            if start == 3000:  # a restart between two batches: the state goes to disk and back
                state = {k: np.array(v) for k, v in detector.state().items()}
                detector = InnovationGLR(spec, quiet=300)
                detector.restore(state)
            got += [(d.index, d.level, d.start_index) for d in detector.update(x[start:start + size])]
        assert got == whole, size
    # back to normal after the quiet rows once the drift is gone
    back = coupled_process(3000, 5)
    calm = InnovationGLR(spec, quiet=300)
    events = calm.update(np.vstack([x[:2600], back]))
    assert events[-1].level == "quiet"


def test_missing_values_are_no_evidence_and_crash_nothing() -> None:
    spec = section(coupled_process(4000, 6))
    x = coupled_process(3000, 7)
    complete = np.ones(len(x), dtype=bool)
    complete[::5] = False  # a fifth of the rows with a value missing (filled in by the monitor)
    x[::5, 3] = 1e9  # whatever was filled in, it does not count
    detector = InnovationGLR(spec)
    assert [d for d in detector.update(x, complete) if d.level == "alarm"] == []
    assert np.isfinite(detector.score)
    assert detector.update(x[:0]) == []
    wild = x[:100].copy()
    wild[::2] = 1.7e308  # finite, but beyond any product the VAR step can hold
    wild[1::4] = -1.7e308
    for part in (wild[:3], wild[3:4], wild[4:]):  # a wild value as a lag of the next batch too
        detector.update(part)
    assert np.isfinite(detector.buf).all() and np.isfinite(detector.score)
    with pytest.raises(ValueError, match="7 counts"):  # a snapshot of another layout
        InnovationGLR(spec).restore({**detector.state(), "counts": np.zeros(3)})


@pytest.mark.parametrize("noise", ["normal", "laplace"])
def test_false_alarms_on_drift_free_rows_stay_within_the_share(noise: str) -> None:
    """400,000 drift-free rows are 40 weeks at this rate: a 13% share expects 5.2 alarms and a
    99% Poisson bound of 11; the law is conservative (0-2 measured over seeds), never above."""
    history = coupled_process(4000, 8, noise)
    spec = section(history)
    x = coupled_process(400_000, 9, noise)
    events = InnovationGLR(spec).update(x)
    alarms = sum(d.level == "alarm" for d in events)
    warnings = sum(d.level == "warning" for d in events)
    assert alarms <= 11, alarms
    assert warnings <= 40, warnings  # 5 x 0.13 x 40 = 26 expected, 99% bound about 40
    # and the same rows shifted by half a spread of one tag in the middle are seen
    x[200_000:, 2] += 0.5 * 3 * 1.6
    assert any(d.level == "alarm" and d.index >= 200_000 for d in InnovationGLR(spec).update(x))


def test_too_few_rows_have_no_detector_and_its_share_goes_to_the_others() -> None:
    assert not innovation.possible(tags=6, rows=1100, held_out=1000)  # 100 rows to fit 13 coefficients
    assert not innovation.possible(tags=1, rows=5000, held_out=1000)
    assert not innovation.possible(tags=6, rows=5000, held_out=100)
    assert innovation.possible(tags=6, rows=5000, held_out=1000)
    with_glr = budgets.split(6, 0, True, True, True, innovation=True)
    without = budgets.split(6, 0, True, True, True)
    assert sum(with_glr["shares"].values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(without["shares"].values()) == pytest.approx(1.0, abs=1e-5)
    assert with_glr["per_stream"]["innovation_glr"] == pytest.approx(15 / 115)
    assert without["per_stream"]["innovation_glr"] == 0.0
    assert with_glr["per_stream"]["cbpe"] == pytest.approx(without["per_stream"]["cbpe"] / 1.15)


def built(history: np.ndarray, held_out: int) -> Manifest:
    names = [f"f{i}" for i in range(TAGS)]
    score = logistic_scores(history[-held_out:] - history.mean(axis=0))
    profile = build_profile(history, names, score)
    monitoring = calibrate(history, [profile["features"][n] for n in names], score, profile["prediction"],
                           np.maximum(score, 1 - score), {"accuracy": 0.9, "n": held_out}, Budget())
    doc = {"name": "coupled", "version": "1", "runtime": "onnx", "model_file": "model.onnx",
           "inputs": [{"name": n, "tag": n} for n in names],
           "output": {"kind": "classifier", "classes": ["NOK", "OK"], "positive_class": "NOK"},
           "profile": profile, "monitoring": monitoring, "metrics": {},
           "self_test": {"inputs": [], "expected_scores": []}, "files": {}, "created": "2026-01-01"}
    return Manifest.model_validate(doc)


def test_a_model_monitor_raises_it_names_the_tags_and_records_the_split() -> None:
    manifest = built(coupled_process(4000, 10), 1000)
    mon = (manifest.model_extra or {})["monitoring"]
    assert mon["innovation"]["fit_rows"] == 3000 and mon["innovation"]["law_rows"] == 1000
    assert mon["budget_split"]["streams"]["innovation_glr"] == 1
    spent = sum(rate * mon["budget_split"]["streams"][d]
                for d, rate in mon["budget_split"]["alarms_per_week_per_stream"].items())
    assert spent == pytest.approx(1.0, rel=1e-4)  # still the whole budget, split
    monitor = ModelMonitor(manifest)
    x = coupled_process(4000, 11)
    x[2000:, 1] += 0.8 * 2
    x[2000:, 2] -= 0.8 * 3
    events = []
    for samples, preds, conf in batches(x, logistic_scores(x - x.mean(axis=0)), 64):
        events += monitor.update(samples, preds, conf)
    glr = [e for e in events if e.detector == "innovation_glr" and e.level == "alarm"]
    assert glr and glr[0].index >= 2000
    assert glr[0].top_features[0] in {"f1", "f2"}
    assert glr[0].start_index is not None and 1900 <= glr[0].start_index <= glr[0].index
    assert "innovation_glr" in monitor.metrics()
    assert not [e for e in events if e.level == "alarm" and e.index < 2000]

"""The false-alarm budget is per model: its split, what it promises on drift-free data, how a
bundle of the per-stream era still loads, and bad budgets refused at the command line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.cli import main
from agent.models.bundle import Manifest
from agent.monitor import budget as budgets
from agent.monitor.budget import Budget
from agent.monitor.calibrate import calibrate
from agent.monitor.monitor import ModelMonitor
from agent.monitor.profile import build_profile
from tests.helpers.synthetic import batches, logistic_scores, manifest_for

ROWS = 200_000
STREAMS = 12
# 200,000 samples are 20 weeks at this rate: the model's budget of 1 false alarm a week
# expects 20 alarms in them, all detectors and streams together
SAMPLES_PER_WEEK = 10_000


def test_the_split_rule_gives_performance_half_and_counts_every_stream() -> None:
    plan = budgets.split(numeric=12, categorical=1, multivariate=True, cbpe=True, labels=True)
    shares, per = plan["shares"], plan["per_stream"]
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["cbpe"] == shares["error_cusum"] == pytest.approx(0.25)
    assert shares["prediction_psi"] + shares["prediction_cusum"] == pytest.approx(0.10)
    assert plan["input_streams"] == 4 * 12 + 1 + 2  # the PCA and the pooled CUSUM: one each
    # half of the inputs' share to the pooled mean CUSUM, the rest in equal parts
    assert per["pooled_cusum"] == pytest.approx(budgets.POOLED_PART * shares["inputs"])
    assert per["cusum"] * (plan["input_streams"] - 1) == pytest.approx(
        (1 - budgets.POOLED_PART) * shares["inputs"])
    # with one numeric input there is no pooled CUSUM: all of the inputs' share in equal parts
    single = budgets.split(numeric=1, categorical=0, multivariate=False, cbpe=True, labels=True)
    assert single["per_stream"]["cusum"] * single["input_streams"] == pytest.approx(
        single["shares"]["inputs"])
    # a regression has no CBPE and no label CUSUM: their half goes to the others in proportion
    regression = budgets.split(numeric=4, categorical=0, multivariate=True, cbpe=False, labels=False)
    assert regression["shares"] == pytest.approx({"prediction_psi": 0.1, "prediction_cusum": 0.1,
                                                  "inputs": 0.8})


def calibrated_model(rng: np.random.Generator, budget: Budget) -> tuple[Manifest, dict[str, Any]]:
    """A fixed, calibrated 'model' (P(NOK) from two inputs) on 12 iid streams, with every
    detector: PSI, mean, prediction-error and scale CUSUMs per stream, PCA, prediction drift,
    CBPE and the outcome CUSUM on labels."""
    names = [f"f{i}" for i in range(STREAMS)]
    train = rng.normal(size=(20_000, STREAMS))
    score = logistic_scores(train)
    nok = rng.random(len(score)) < score
    profile = build_profile(train, names, score)
    monitoring = calibrate(train, [profile["features"][n] for n in names], score, profile["prediction"],
                           np.maximum(score, 1 - score),
                           {"accuracy": float(np.mean((score > 0.5) == nok)), "n": len(score)},
                           budget, outcomes=(score, nok))
    doc = {"name": "iid", "version": "1", "runtime": "onnx", "model_file": "model.onnx",
           "inputs": [{"name": n, "tag": n} for n in names],
           "output": {"kind": "classifier", "classes": ["NOK", "OK"], "positive_class": "NOK"},
           "profile": profile, "monitoring": monitoring, "metrics": {},
           "self_test": {"inputs": [], "expected_scores": []}, "files": {}, "created": "2026-01-01"}
    return Manifest.model_validate(doc), monitoring


def poisson_interval(lam: float, level: float = 0.99) -> tuple[int, int]:
    """Central interval of Poisson(lam) holding ``level`` of its mass."""
    tail = (1 - level) / 2
    cdf, term, k, lo = 0.0, math.exp(-lam), 0, None
    while True:
        cdf += term
        if lo is None and cdf > tail:
            lo = k
        if cdf >= 1 - tail:
            return lo if lo is not None else 0, k
        k += 1
        term *= lam / k


def test_alarms_on_drift_free_iid_rows_agree_with_the_model_budget() -> None:
    """200,000 drift-free iid rows of a 12-stream model, labelled from the model's own
    probabilities: the alarm count of all detectors together lies in the 99% Poisson interval
    of the budget (20). Over seeds 0-11 the counts were 8-22, mean 13.5 (11 of 12 inside): the
    laws are exact for known references; the margins for references estimated from finite,
    autocorrelated data (their standard errors), the label CUSUM's floor and PSI's conservative law
    spend about 30%."""
    budget = Budget(sample_rate_hz=SAMPLES_PER_WEEK / budgets.SECONDS_PER_WEEK)
    rng = np.random.default_rng(7)
    manifest, monitoring = calibrated_model(rng, budget)
    split = monitoring["budget_split"]
    spent = sum(rate * split["streams"][d] for d, rate in split["alarms_per_week_per_stream"].items())
    assert spent == pytest.approx(budget.alarms_per_week, rel=1e-4)  # the whole budget, split
    monitor = ModelMonitor(manifest)
    x = rng.normal(size=(ROWS, STREAMS))
    score = logistic_scores(x)
    nok = rng.random(ROWS) < score
    alarms = warnings = 0
    for samples, preds, conf in batches(x, score, 4096):
        first = int(samples.ids[0])
        rows = np.arange(first, first + len(samples))
        events = monitor.update(samples, preds, conf)
        events += monitor.on_labels(rows, preds.label_idx.astype(float), np.where(nok[rows], 0.0, 1.0),
                                    score[rows])
        alarms += sum(e.level == "alarm" for e in events)
        warnings += sum(e.level == "warning" for e in events)
    weeks = ROWS / SAMPLES_PER_WEEK
    lo, hi = poisson_interval(budget.alarms_per_week * weeks)
    assert lo <= alarms <= hi, (alarms, lo, hi)
    assert warnings <= poisson_interval(budget.warnings_per_week * weeks)[1]


def test_the_manifest_records_the_budget_its_unit_and_split() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(3000, 4))
    mon = manifest_for(train, logistic_scores(train)).model_extra["monitoring"]
    assert mon["budget"]["unit"] == "per_model"
    assert mon["budget"]["alarms_per_week"] == 1.0 and mon["budget"]["warnings_per_week"] == 5.0
    assert mon["budget_split"]["unit"] == budgets.UNIT and mon["budget_split"]["rule"] == budgets.SPLIT_RULE
    assert "per model" in budgets.describe(mon)
    assert "inputs 40% (pooled mean CUSUM 20%)" in budgets.describe(mon)


def test_a_bundle_of_the_per_stream_era_still_loads_and_says_so() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=(3000, 4))
    doc = manifest_for(train, logistic_scores(train)).model_dump()
    mon = doc["monitoring"]
    # what the builder wrote before: no unit, no split, no scale section, warnings 10x
    mon["budget"] = {k: v for k, v in mon["budget"].items() if k not in ("unit", "scale_ratio")}
    mon["budget"]["warnings_per_week"] = 10.0
    for key in ("budget_split", "scale"):
        mon.pop(key)
    old = Manifest.model_validate(doc)
    monitor = ModelMonitor(old)
    assert not monitor.budget_per_model and not monitor.has_scale
    assert "PER STREAM" in budgets.describe(mon)
    x = rng.normal(size=(1000, 4))
    for samples, preds, conf in batches(x, logistic_scores(x), 64):
        monitor.update(samples, preds, conf)  # it still monitors
    assert monitor.samples == 1000
    assert Budget.from_manifest(mon).alarms_per_week == 1.0  # the hub retrains it per model


@pytest.mark.parametrize(("flag", "value", "fix"), [
    ("--false-alarms-per-week", "0", "must be greater than 0"),
    ("--false-alarms-per-week", "-1", "must be greater than 0"),
    ("--warnings-per-week", "0", "must be greater than 0"),
    ("--sample-rate", "-2", "must be greater than 0"),
])
def test_bad_budget_exits_2_with_the_fix(trained: dict[str, Path], tmp_path: Path, flag: str, value: str,
                                         fix: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bundle", "build", "--model", str(trained["model"]), "--train-csv", str(trained["train"]),
               "--holdout-csv", str(trained["holdout"]), "--label", "label", "--name", "m",
               "--version", "1", "--out", str(tmp_path / "b"), flag, value])
    err = capsys.readouterr().err
    assert rc == 2 and flag in err and fix in err and "Traceback" not in err
    assert not (tmp_path / "b" / "manifest.json").exists()

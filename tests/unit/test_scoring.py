"""Scoring that a trivial model cannot ace: per-class figures with intervals, balanced accuracy,
cost per part, the paired cost test of champion/challenger and the watch, the agent's rolling
per-class performance, and bad cost settings refused with the setting named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.models import scoring
from agent.models.scoring import CostError, CostMatrix, check_costs, paired_counts
from agent.monitor.performance import ClassPerformance

COSTS = CostMatrix(("NOK", "OK"), "NOK")  # defaults: a missed NOK costs 10, a false NOK 1
NOK, OK = 0, 1


def imbalanced(n: int = 400, nok_share: float = 0.15, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < nok_share, NOK, OK)


def noisy_copy(truth: np.ndarray, wrong: float, seed: int) -> np.ndarray:
    """A model right on all but a share ``wrong`` of the parts, chosen at random."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(truth)) < wrong
    return np.where(flip, 1 - truth, truth)


def test_cost_matrix_and_figures_of_a_confusion_matrix() -> None:
    assert COSTS.matrix().tolist() == [[0.0, 10.0], [1.0, 0.0]]
    # 10 NOK parts, 8 caught; 90 OK parts, 5 called NOK
    s = scoring.classifier_scores(np.array([[8, 2], [5, 85]]), COSTS)
    assert s["n"] == 100 and s["accuracy"] == 0.93
    assert s["balanced_accuracy"] == pytest.approx((0.8 + 85 / 90) / 2, abs=1e-4)
    assert s["cost_per_part"] == pytest.approx((2 * 10 + 5 * 1) / 100)
    nok = s["per_class"]["NOK"]
    assert nok["support"] == 10 and nok["recall"] == 0.8
    assert nok["precision"] == pytest.approx(8 / 13, abs=1e-4)
    assert nok["recall_ci"] == pytest.approx([0.4902, 0.9433], abs=1e-4)  # Wilson 95%, 8 of 10
    assert s["recall"] == 0.8 and s["f1"] == pytest.approx(2 * 0.8 * (8 / 13) / (0.8 + 8 / 13), abs=1e-4)
    three = CostMatrix(("A", "NOK", "OK"), "NOK", 5.0, 2.0).matrix()
    assert three.tolist() == [[0, 2, 2], [5, 0, 5], [2, 2, 0]]


def test_an_always_ok_model_scores_high_on_accuracy_and_fails_every_other_figure() -> None:
    truth = imbalanced()
    always_ok = np.full(len(truth), OK)
    s = scoring.classifier_scores(scoring.confusion(truth, always_ok, 2), COSTS)
    assert s["accuracy"] > 0.8  # what made the old demo's claim look good
    assert s["balanced_accuracy"] == 0.5 and s["per_class"]["NOK"]["recall"] == 0.0
    assert s["cost_per_part"] > 1.0
    assert scoring.recall_floor_failures(s, 0.5) == [f"NOK recall 0.00 below the floor 0.5 on "
                                                     f"{s['per_class']['NOK']['support']} NOK parts"]


def test_always_ok_challenger_with_higher_accuracy_is_rejected_with_the_reason() -> None:
    truth = imbalanced(400)
    # the champion catches every NOK part but raises 20% false NOK calls: accuracy about 0.83
    champion = np.where((truth == OK) & (np.random.default_rng(1).random(len(truth)) < 0.2), NOK, truth)
    challenger = np.full(len(truth), OK)
    counts = paired_counts(truth, champion, challenger, 2)
    publish, reason, figures = scoring.challenger_verdict(counts, COSTS, margin=0.02, floor=0.5)
    assert figures["challenger"]["accuracy"] > figures["champion"]["accuracy"]
    assert not publish and "NOK recall 0.00 below the floor 0.5" in reason
    # without the floor, cost alone still says no
    publish, reason, _ = scoring.challenger_verdict(counts, COSTS, margin=0.02, floor=0.0)
    assert not publish and "not cheaper by the margin" in reason


def test_a_cheaper_challenger_is_published_and_a_difference_within_noise_is_not() -> None:
    truth = imbalanced(400)
    champion = noisy_copy(truth, 0.25, seed=5)
    challenger = noisy_copy(truth, 0.05, seed=6)
    publish, reason, figures = scoring.challenger_verdict(paired_counts(truth, champion, challenger, 2),
                                                          COSTS, margin=0.02, floor=0.5)
    assert publish and reason.startswith("published"), reason
    assert figures["paired"]["difference"] < -0.02 and figures["paired"]["p_lower"] <= 0.05
    # two parts fewer missed out of 60: cheaper on paper (-0.33 per part), within noise
    truth = imbalanced(60, seed=8)
    champion = truth.copy()
    champion[np.flatnonzero(truth == NOK)[:3]] = OK
    challenger = truth.copy()
    challenger[np.flatnonzero(truth == NOK)[:1]] = OK
    counts = paired_counts(truth, champion, challenger, 2)
    publish, reason, figures = scoring.challenger_verdict(counts, COSTS, margin=0.02, floor=0.5)
    assert figures["paired"]["difference"] < -0.02
    assert not publish and "within noise" in reason, reason
    # the same counts always give the same verdict (a fixed seed): reproducible decisions
    assert scoring.challenger_verdict(counts, COSTS, 0.02, 0.5)[2] == figures


def test_a_candidate_missing_nok_parts_the_incumbent_catches_is_worse_despite_higher_accuracy() -> None:
    truth = imbalanced(300)
    rng = np.random.default_rng(2)
    incumbent = np.where((truth == OK) & (rng.random(len(truth)) < 0.15), NOK, truth)  # false alarms
    candidate = truth.copy()
    candidate[np.flatnonzero(truth == NOK)[::3]] = OK  # misses a third of the NOK parts
    counts = paired_counts(truth, incumbent, candidate, 2)
    accuracy = [float(np.mean(m == truth)) for m in (incumbent, candidate)]
    assert accuracy[1] > accuracy[0]
    worse, test = scoring.candidate_worse(counts, COSTS, margin=0.05)
    assert worse and test is not None and test.difference > 0.05 and test.p_higher <= 0.05
    worse_the_other_way, _ = scoring.candidate_worse(paired_counts(truth, candidate, incumbent, 2),
                                                     COSTS, margin=0.05)
    assert not worse_the_other_way
    # a model that always says OK is as accurate as the incumbent, and worse still
    always_ok = np.full(len(truth), OK)
    assert float(np.mean(always_ok == truth)) >= accuracy[0]
    assert scoring.candidate_worse(paired_counts(truth, incumbent, always_ok, 2), COSTS, margin=0.05)[0]


@pytest.mark.parametrize("missed,false,fragment", [
    (-1, 1, "cost_missed_nok=-1: a cost cannot be negative"),
    (10, "x", "cost_false_nok='x': use a number >= 0"),
    (0, 0, "both 0"),
    (float("nan"), 1, "cost_missed_nok=nan"),
])
def test_bad_costs_name_the_setting(missed: object, false: object, fragment: str) -> None:
    with pytest.raises(CostError, match=fragment.replace("(", r"\(")):
        check_costs(missed, false)


def test_bad_policy_settings_are_refused_naming_each() -> None:
    from hub.policy import check_policy
    from hub.registry import HubError

    for changes, fragment in (({"cost_missed_nok": -5}, "cost_missed_nok=-5"),
                              ({"min_class_recall": 1.2}, "min_class_recall=1.2: use a number between 0 and"),
                              ({"min_per_class": 0}, "min_per_class=0: use a whole number >= 1"),
                              ({"accuracy_below": 0.8}, "replaced by balanced_accuracy_below"),
                              ({"significance": 0}, "significance=0")):
        with pytest.raises(HubError, match=fragment):
            check_policy(changes)
    check_policy({"cost_missed_nok": 25, "min_class_recall": 0.7, "min_per_class": 30})


def test_rolling_performance_per_class_is_windowed_batch_invariant_and_restorable() -> None:
    truth = imbalanced(500, seed=4)
    pred = noisy_copy(truth, 0.1, seed=9)
    one = ClassPerformance(COSTS, window=200, version="1.2.0")
    one.update(truth, pred)
    other = ClassPerformance(COSTS, window=200, version="1.2.0")
    for i in range(0, 500, 37):  # any batching gives the same figures
        other.update(truth[i:i + 37], pred[i:i + 37])
    assert one.metrics() == other.metrics()
    m = one.metrics()
    expected = scoring.classifier_scores(scoring.confusion(truth[-200:], pred[-200:], 2), COSTS)
    assert m["rolling_balanced_accuracy"] == expected["balanced_accuracy"]
    assert m["rolling_cost_per_part"] == expected["cost_per_part"]
    assert m["rolling_per_class"]["NOK"]["recall"] == expected["per_class"]["NOK"]["recall"]
    since = m["since_activation"]
    assert since["version"] == "1.2.0" and since["labelled"] == 500
    assert np.array_equal(np.array(since["confusion"]), scoring.confusion(truth, pred, 2))
    restored = ClassPerformance(COSTS, window=200, version="1.2.0")
    restored.restore(one.state())
    restored.update(truth[:10], pred[:10])
    one.update(truth[:10], pred[:10])
    assert restored.metrics() == one.metrics()


def test_bundle_build_writes_the_cost_matrix_and_per_class_holdout_figures(
        trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    base = ["bundle", "build", "--model", str(trained["model"]), "--train-csv", str(trained["train"]),
            "--label", "label", "--name", "moulding-nok", "--version", "1.0.0",
            "--holdout-csv", str(trained["holdout"]), "--positive-class", "NOK"]
    assert main([*base, "--out", str(tmp_path / "bad"), "--cost-missed-nok", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--cost-missed-nok=-1.0: a cost cannot be negative" in err and "Traceback" not in err
    costs = ["--cost-missed-nok", "25", "--cost-false-nok", "2"]
    assert main([*base, "--out", str(tmp_path / "b"), *costs]) == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["costs"]["matrix"] == [[0.0, 25.0], [2.0, 0.0]]
    assert manifest["costs"]["classes"] == ["NOK", "OK"]
    holdout = manifest["metrics"]["holdout"]
    nok = holdout["per_class"]["NOK"]
    assert nok["support"] > 20 and 0 <= nok["recall_ci"][0] <= nok["recall"] <= nok["recall_ci"][1] <= 1
    assert holdout["cost_missed_nok"] == 25 and holdout["in_sample"] is False
    assert {"accuracy", "balanced_accuracy", "cost_per_part", "precision", "recall", "f1"} <= set(holdout)

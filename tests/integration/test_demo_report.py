"""The demo's story and report on a synthetic run of the simulated line (no agent: seconds, not
minutes): recovery is judged on NOK recall and balanced accuracy, so a model that always says OK
fails it although its accuracy "recovers"; report.html and accuracy.png are readable (a legend
that covers neither panel, plain-language rows, rounded numbers), checked in headless Chromium
with a screenshot kept in test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from agent.demo.report import marks, page, plot
from agent.demo.scoreboard import Scoreboard
from agent.demo.sim.process import DriftStep, LineProcess
from agent.demo.story import Story, loop_figures
from tests.integration.test_dashboard import ARTIFACTS, run_chromium, screenshot

ONSETS = {"resin": 300, "concept": 500}
FIXED = 850  # the part from which a retrained version runs
PARTS = 1100


def synthetic_run(model: str) -> tuple[Story, Scoreboard, dict[int, bool], dict[str, Any]]:
    """The line's true OK/NOK per part and a model's calls: ``good`` catches NOK parts before
    the relation changes and again after the retrain, ``always_ok`` never calls NOK."""
    proc = LineProcess(seed=5, drift=[DriftStep("resin", ONSETS["resin"] * 30.0),
                                      DriftStep("concept", ONSETS["concept"] * 30.0)])
    rng = np.random.default_rng(1)
    board, story, results = Scoreboard(), Story(), {}
    for part in range(1, PARTS + 1):
        _, ok = proc.part(part * 30.0)
        results[part] = ok
        truth = "OK" if ok else "NOK"
        if model == "always_ok":
            call = "OK"
        elif ONSETS["concept"] <= part < FIXED:  # the old rule: misses what is NOK now
            call = "NOK" if rng.random() < 0.2 else "OK"
        else:
            call = truth if rng.random() < 0.94 else ("NOK" if truth == "OK" else "OK")
        board.by_part[part] = (truth, call)
        board.version_of[part] = "1.2.0" if part >= FIXED else "1.1.0" if part >= 90 else "1.0.0"
        story.drift_points.append((part, 0.3 if part < ONSETS["resin"] else 2.5))
    story.retrain_started_part, story.retrain_status, story.retrain_version = 800, "deployed", "1.2.0"
    story.new_version_active_part = FIXED
    story.versions_seen = [(3, "1.0.0"), (90, "1.1.0"), (FIXED, "1.2.0")]
    story.runs = [{"part": 560, "status": "skipped", "version": None, "decision": None,
                   "reason": "balanced accuracy 0.41 below 0.8; waiting for labelled samples since then: "
                             "holdout has 7 NOK of 20"},
                  {"part": 800, "status": "deployed", "version": "1.2.0",
                   "reason": "balanced accuracy 0.4 below 0.8",
                   "decision": "published: cheaper by more than 0.05 per part"}]
    timeline = [{"part": p, "level": "alarm", "kind": k, "detector": d, "feature": None,
                 "phase": "resin" if p < ONSETS["concept"] else "concept"}
                for p, k, d in ((312, "data_drift", "cusum"), (316, "data_drift", "psi"),
                                (560, "performance", "error_cusum"))]
    summary = {"alarm_timeline": timeline, "parts_made": PARTS,
               "first_alarm_after_concept": {"part": 560, "parts_after_onset": 60},
               "version_history": ["1.0.0 published", "1.2.0 promoted"]}
    return story, board, results, summary


def test_recovery_is_judged_on_nok_recall_and_an_always_ok_model_fails_it() -> None:
    story, board, results, summary = synthetic_run("good")
    loop = loop_figures(story, board, ONSETS, results, summary)
    assert loop["recovery"]["recovered"], loop["recovery"]
    assert 0.10 <= loop["nok_share_after_relation_change"] <= 0.20
    assert loop["at_worst"]["nok_recall"] < 0.4 and loop["after_recovery"]["nok_recall"] >= 0.7
    assert [r["status"] for r in loop["retrains"]] == ["deployed"]
    assert loop["incidents"]["concept"] == {"incidents": 1, "notifications": 1}

    # parts its predecessor answered for after the activation (a batch the new version failed
    # on) are not the new version's record: judged without them, and counted
    story, board, results, summary = synthetic_run("good")
    for part in range(FIXED + 20, FIXED + 60):
        board.by_part[part] = (board.by_part[part][0], "OK")
        board.version_of[part] = "1.1.0"
    loop = loop_figures(story, board, ONSETS, results, summary)
    assert loop["recovery"]["recovered"], loop["recovery"]
    assert loop["after_recovery_parts_by_version"]["1.1.0"] == 40
    assert loop["after_recovery"]["labelled_parts"] == loop["after_recovery_parts_by_version"]["1.2.0"]

    story, board, results, summary = synthetic_run("always_ok")
    loop = loop_figures(story, board, ONSETS, results, summary)
    before, after = loop["before_drift"], loop["after_recovery"]
    # on accuracy alone it looks fine: more than 8 parts in 10 called right, before and after ...
    assert before["accuracy"] > 0.8 and after["accuracy"] > 0.8
    # ... on what matters it did not
    assert not loop["recovery"]["recovered"]
    assert any("NOK recall 0.0 below 0.7" in why for why in loop["recovery"]["why_not"])
    assert after["balanced_accuracy"] == 0.5 and after["cost_per_part"] > 1


def test_report_is_readable_in_a_browser(tmp_path: Path) -> None:
    story, board, results, summary = synthetic_run("good")
    loop = loop_figures(story, board, ONSETS, results, summary)
    events = marks(story, ONSETS, loop, summary["alarm_timeline"])
    # two alarms 4 parts apart are one moment on the chart
    assert [p for p, k, _ in events if k == "alarm"] == [312, 560]
    boxes = plot(tmp_path / "accuracy.png", story, board, events, 1.0)
    legend = boxes["legend"]
    for panel in boxes["panels"]:  # the legend stands beside the panels, never on them
        assert legend[0] >= panel[0] + panel[2] - 1, (legend, panel)
    fig = boxes["figure"]
    assert legend[0] + legend[2] <= fig[2] + 1 and legend[1] >= -1 and legend[1] + legend[3] <= fig[3] + 1
    assert any("NOK recall" in label for label in boxes["labels"])
    assert any("alarm threshold" in label for label in boxes["labels"])
    assert any(label.startswith("model version switch") for label in boxes["labels"])
    (tmp_path / "report.html").write_text(page(loop, summary, ONSETS, events))
    dom = run_chromium(["--dump-dom", f"file://{tmp_path / 'report.html'}"], tmp_path / "profile")
    for text in ("NOK parts caught (NOK recall)", "balanced accuracy (mean of NOK and OK recall)",
                 "expected cost per part (missed NOK 10, false NOK 1)", "The model recovered",
                 "holdout has 7 NOK of 20", "What the hub decided about retraining"):
        assert text in dom, text
    cells = re.findall(r"<td>(\d+\.\d+)</td>", dom)
    assert cells and all(len(c.split(".")[1]) <= 3 for c in cells)  # rounded
    shot = screenshot(f"file://{tmp_path / 'report.html'}", "demo-report.png", tmp_path / "profile2", 1700)
    assert shot.parent == ARTIFACTS

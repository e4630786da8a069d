"""make demo, end to end: the full loop on the simulated line in compressed time. Models reach
the agent through the hub, the plant changes, the agent warns and alarms, the hub retrains on
the labelled samples the gateway uploaded once every class has enough examples, publishes the
challenger only because it is cheaper per part, rolls it out as a canary and promotes it, and
the model catches NOK parts again; the hub holds every record the agent wrote.

The same agent runs a second model, the cycle-time regressor, on the same line: the changes
touch neither the cycle time nor its inputs, so its error stays flat and no incident is its.

Recovery is judged on NOK recall and balanced accuracy (``agent.demo.story.recovery``), which an
always-OK model fails: tests/integration/test_demo_report.py shows that on the same rule."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from agent.demo.run import run_demo


def test_demo_closes_the_loop(tmp_path: Path) -> None:
    assert run_demo(duration=120, out=tmp_path, speed=300) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    _cycle_time_checks(summary)
    assert summary["records_at_hub"] == summary["records_written_by_agent"] > 0
    assert summary["false_alarms_before_drift"] == 0
    history = summary["version_history"]
    assert any(h.startswith("moulding-nok 1.0.0 activated on demo-line-1") for h in history)
    loop = summary["loop"]
    # the relation change keeps a realistic share of NOK parts, but other parts are NOK
    assert 0.10 <= loop["nok_share_after_relation_change"] <= 0.20
    # in this order: drift, warning, alarm, retrain, the new version active
    assert loop["drift_onset_part"] <= loop["first_warning_part"] <= loop["first_alarm_part"]
    assert loop["first_alarm_part"] < loop["retrain_started_part"] < loop["new_version_active_part"]
    assert loop["retrain_result"] == "deployed" and summary["model"] == f"moulding-nok {loop['new_version']}"
    assert any(h.startswith(f"moulding-nok {loop['new_version']} promoted") for h in history)
    # each model got its version from the hub; the quality model's canaries never touched it
    activations = [h for h in history if h.startswith("cycle-time ") and " activated on " in h]
    assert len(activations) == 1, history
    assert activations[0].startswith("cycle-time 1.0.0 activated on demo-line-1: deployed by the hub")
    # at most one retrain per change, each with the reason it was published
    onsets = summary["drift_onsets_part"]
    after = [r for r in loop["retrains"] if r["part"] is not None and r["part"] >= onsets["concept"]]
    assert len(after) == 1 == len(loop["retrains"]) and "cheaper by more than" in after[0]["decision"]
    assert any("waiting for labelled samples" in (r["reason"] or "") for r in loop["retrain_decisions"])
    # the changed relation really hurt where it matters, and the loop restored it
    assert loop["at_worst"]["nok_recall"] < 0.3 and loop["at_worst"]["balanced_accuracy"] < 0.6
    assert loop["recovery"]["recovered"], (loop["recovery"], loop["after_recovery_parts_by_version"],
                                           loop["new_version_holdout"])
    before, recovered = loop["before_drift"], loop["after_recovery"]
    assert recovered["nok_recall"] >= 0.7
    assert recovered["balanced_accuracy"] >= before["balanced_accuracy"] - 0.05
    assert recovered["cost_per_part"] < loop["at_worst"]["cost_per_part"]
    # the retrained version's card shows its holdout NOK recall
    holdout = loop["new_version_holdout"]
    assert holdout["nok_recall"] >= 0.6
    card = (tmp_path / "cards" / f"moulding-nok-{loop['new_version']}.html").read_text()
    assert re.search(rf"<td>NOK</td><td>\d+</td><td>{holdout['nok_recall']:.3f} \(", card), card[-3000:]
    for name in ("report.html", "accuracy.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert "NOK parts caught (NOK recall)" in (tmp_path / "report.html").read_text()


def _cycle_time_checks(summary: dict[str, Any]) -> None:
    """The second model ran beside the first, was scored on the measured cycle times, and the
    drift story left it alone."""
    assert summary["models_on_gateway"] == ["moulding-nok", "cycle-time"]
    cycle = summary["models"]["cycle-time"]
    parts = summary["parts_made"]
    assert cycle["model"] == "cycle-time 1.0.0" and cycle["inference_errors"] == 0
    # every part scored or counted as missed (the counter skipped it while OPC UA reconnected,
    # which a loaded machine can cause: the demo's line, hub and agent share one process); a
    # few in flight at the end; a reconnect loses about a second of parts, not dozens
    missed = summary["parts_missed"]
    assert cycle["predictions"] + missed >= parts - 5 and cycle["labels_received"] >= parts - 5
    assert missed <= 30 * summary["source_reconnects"], summary
    phases = [cycle[k] for k in ("before_drift", "after_resin", "after_relation_change")]
    for phase in phases:
        assert phase["parts"] > 100 and math.isfinite(phase["mae_s"]) and math.isfinite(phase["rmse_s"])
        assert 0 < phase["mae_s"] <= phase["rmse_s"]
    # as good on the line as on its holdout, before and after both changes
    assert max(p["mae_s"] for p in phases) <= 1.25 * cycle["holdout"]["mae_s"], cycle
    assert cycle["mae_flat"] and math.isfinite(cycle["agent_rolling_mae_s"])
    assert cycle["incidents"] == 0 and cycle["notifications"] == 0, cycle
    # of every incident the agent raised, none was the cycle-time model's
    by_model = summary["incidents_by_model"]
    assert by_model == {"moulding-nok": summary["incidents"]} and summary["incidents"] >= 1, by_model

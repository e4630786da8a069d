"""make demo, end to end: the full loop on the simulated line in compressed time. Models reach
the agent through the hub, the plant changes, the agent warns and alarms, the hub retrains on
the labelled samples the gateway uploaded, rolls the challenger out as a canary and promotes
it, and accuracy recovers; the hub holds every record the agent wrote."""

from __future__ import annotations

import json
from pathlib import Path

from agent.demo.run import run_demo


def test_demo_closes_the_loop(tmp_path: Path) -> None:
    assert run_demo(duration=120, out=tmp_path, speed=300) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["records_at_hub"] == summary["records_written_by_agent"] > 0
    assert summary["false_alarms_before_drift"] == 0
    history = summary["version_history"]
    assert any(h.startswith("1.0.0 activated on demo-line-1") for h in history)
    loop = summary["loop"]
    # in this order: drift, warning, alarm, retrain, the new version active
    assert loop["drift_onset_part"] <= loop["first_warning_part"] <= loop["first_alarm_part"]
    assert loop["first_alarm_part"] < loop["retrain_started_part"] < loop["new_version_active_part"]
    assert loop["retrain_result"] == "deployed" and summary["model"] == f"moulding-nok {loop['new_version']}"
    assert any(h.startswith(f"{loop['new_version']} promoted") for h in history)
    assert loop["accuracy_at_worst"] < 0.6  # the changed relation really hurt
    assert loop["accuracy_after_recovery"] >= loop["accuracy_before_drift"] - 0.05
    for name in ("report.html", "accuracy.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert list((tmp_path / "cards").glob("moulding-nok-*.html"))

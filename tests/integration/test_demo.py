"""make demo, shortened: models reach the agent through the hub, a canary is promoted, and the
hub holds every record the agent wrote."""

from __future__ import annotations

import json
from pathlib import Path

from agent.demo import run_demo


def test_demo_end_to_end(tmp_path: Path) -> None:
    assert run_demo(duration=35, out=tmp_path, speed=300) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["records_at_hub"] == summary["records_written_by_agent"] > 0
    history = summary["version_history"]
    assert any(h.startswith("1.0.0 activated on demo-line-1") for h in history)
    assert any(h.startswith("1.1.0 activated on demo-line-1") for h in history)
    assert any(h.startswith("1.1.0 promoted") for h in history)
    assert summary["model"] == "moulding-nok 1.1.0" and summary["errors"] == {}

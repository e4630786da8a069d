"""edge-agent alarms: list, ack, shelve, unshelve against the agent's status file, and bad
input (an unknown incident, a duration like 8x, too long a shelving) -> exit 2 with the fix."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import main
from agent.cli.alarms import parse_duration
from agent.errors import ConfigError
from agent.monitor.incidents import IncidentBook
from agent.monitor.watch import REQUESTS_DIR
from tests.helpers.running import base_config, opcua_source
from tests.unit.test_incidents import det


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    """A gateway's config and a status file with one open alarm incident."""
    book = IncidentBook("moulding-nok", "1.0.0", "sha")
    book.apply([det(120, start=101), det(130, feature="t2")])
    status: dict[str, Any] = {"updated": time.time(), "monitor": {"incidents": book.figures()}}
    (tmp_path / "status.json").write_text(json.dumps(status))
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path, [opcua_source(4840)])))
    return path


def requests(config: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((config.parent / REQUESTS_DIR).glob("*.json"))]


def incident_id(config: Path) -> str:
    status = json.loads((config.parent / "status.json").read_text())
    return str(status["monitor"]["incidents"]["open"][0]["id"])


def test_list_shows_the_incident_with_its_features_and_estimated_start(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alarms", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert incident_id(config) in out and "ALARM" in out and "features t1, t2" in out
    assert "change estimated from sample 101 (change point)" in out and "1 notification(s)" in out


def test_ack_and_shelve_hand_typed_requests_to_the_agent(config: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    inc = incident_id(config)
    assert main(["alarms", "ack", "--config", str(config), "--by", "shift-lead"]) == 0
    assert main(["alarms", "shelve", inc[:5], "--for", "1h30m", "--by", "night-shift",
                 "--reason", "sensor swap", "--config", str(config)]) == 0
    assert "shelved by night-shift until" in capsys.readouterr().out
    ack, shelve = requests(config)
    assert (ack["action"], ack["incident"], ack["model"], ack["by"]) == ("ack", inc, "moulding-nok",
                                                                         "shift-lead")
    assert (shelve["action"], shelve["incident"], shelve["by"], shelve["reason"]) == (
        "shelve", inc, "night-shift", "sensor swap")
    assert shelve["until"] - shelve["requested"] == pytest.approx(5400, abs=2)


@pytest.mark.parametrize(("args", "message"), [
    (["shelve", "abcdef12", "--for", "8h", "--by", "a", "--reason", "b"],
     "incident 'abcdef12': no such open incident; open: "),
    (["shelve", "{id}", "--for", "8x", "--by", "a", "--reason", "b"],
     "--for: '8x' is not a duration; write a number and a unit: 90s, 30m, 8h, 1d"),
    (["shelve", "{id}", "--for", "10d", "--by", "a", "--reason", "b"],
     "longer than shelving allows (7d)"),
    (["shelve", "{id}", "--for", "0h", "--by", "a", "--reason", "b"], "is no time at all"),
    (["ack", "nope1234"], "no such open incident"),
    (["unshelve", "zz"], "no such open incident"),
])
def test_bad_input_exits_2_with_the_fix(config: Path, args: list[str], message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["alarms", *[a.replace("{id}", incident_id(config)) for a in args], "--config", str(config)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert requests(config) == []  # nothing handed to the agent


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("8h") == 8 * 3600
    assert parse_duration("1h30m") == 5400 and parse_duration("1D") == 86400
    for bad in ("", "8", "h", "8 h", "-1h", "1h30", "8x"):
        with pytest.raises(ConfigError):
            parse_duration(bad)

"""docs/configuration.md is generated from the config models: it must say what the agent accepts."""

from __future__ import annotations

from pathlib import Path

from agent.config import AgentConfig
from agent.config.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_committed_reference_is_current() -> None:
    assert DOC.read_text() == render(AgentConfig), (
        "docs/configuration.md is stale: run `python -m agent.config.reference > docs/configuration.md`")


def test_the_reference_covers_every_section_and_key() -> None:
    text = render(AgentConfig)
    for name, field in AgentConfig.model_fields.items():
        assert f"| `{field.alias or name}` |" in text
    for section in ("OpcUaSourceConfig", "MqttSourceConfig", "SparkplugSourceConfig", "HubConfig",
                    "MonitoringConfig", "RollbackPolicy", "InputLimits"):
        assert f"\n## {section}\n" in text, section
    assert "**required**" in text and "PydanticUndefined" not in text and "<class" not in text

"""Config overlays from the hub on a running agent: applied component by component, pinned
fields kept, invalid or restart-only overlays refused, a change that cannot connect reverted
after its grace period, the last good overlay kept across a restart, every step audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agent.cli import main
from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimulatedLine
from hub.overlays import set_overlay
from hub.registry import HubError
from hub.server import HubServer
from hub.storage import add_gateway
from tests.helpers.hubtest import agent_config, report
from tests.helpers.running import running_agent, wait_for


def config_state(engine: Engine, gateway_id: str) -> dict[str, Any]:
    return report(engine, gateway_id).get("config") or {}


async def test_overlays_applied_refused_and_reverted(
        hub: HubServer, hub_db: Engine, line: SimulatedLine, broker: Any, tmp_path: Path,
        trained: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    token = add_gateway(hub_db, "gw-a", group="press")
    cfg = agent_config(tmp_path / "a", line, hub, token, broker, "gw-a", trained)
    cfg["model"]["bundle"] = str(trained["bundle"])
    cfg["outputs"] = {"mqtt": {"broker": {"host": "127.0.0.1", "port": broker.port}}}
    cfg["config_pins"] = ["hub", "outputs.mqtt.broker"]
    cfg["remote_config"] = {"grace_s": 1.0}
    config_file = tmp_path / "agent.yaml"
    config_file.write_text(json.dumps(cfg))
    with pytest.raises(HubError, match="only be set in the gateway"):
        set_overlay(hub_db, "gw-a", {"state_dir": "/tmp/x"}, "test", None)

    async with running_agent(cfg) as agent:
        await wait_for(lambda: agent.sources[0].status.connected, 20, "source connected")
        source_task = agent._tasks["source:plc"]
        # 1: sampling, rollback policy and (pinned) broker for the whole group
        set_overlay(hub_db, "group:press", {"features": {"max_age_s": 7.0},
                                            "model": {"rollback": {"watch_s": 42}},
                                            "outputs": {"mqtt": {"broker": {"port": 1}}}}, "ops", "tune")
        await wait_for(lambda: config_state(hub_db, "gw-a").get("state") == "applied", 20, "applied")
        assert agent.config.features.max_age_s == 7.0 and agent.config.model.rollback.watch_s == 42
        assert agent.lifecycle is not None and agent.lifecycle.policy.watch_s == 42
        assert agent.config.outputs.mqtt is not None and agent.config.outputs.mqtt.broker.port == broker.port
        assert config_state(hub_db, "gw-a")["ignored_pinned"] == ["outputs.mqtt.broker"]
        assert agent._tasks["source:plc"] is source_task  # an unchanged source keeps running

        # 2: invalid for this gateway -> refused, nothing changes
        set_overlay(hub_db, "gw-a", {"features": {"mode": "sometimes"}}, "ops", None)
        await wait_for(lambda: config_state(hub_db, "gw-a").get("state") == "rejected", 20, "rejected")
        assert "features.mode" in config_state(hub_db, "gw-a")["detail"]
        assert agent.config.features.max_age_s == 7.0

        # 3: a setting that needs a restart -> refused, never half-applied
        set_overlay(hub_db, "gw-a", {"outbox": {"synchronous": "FULL"}}, "ops", None)
        await wait_for(lambda: "need a restart" in (config_state(hub_db, "gw-a").get("detail") or ""),
                       20, "restart-only refused")
        assert agent.config.outbox.synchronous == "NORMAL"

        # 4: the source moved to an endpoint that does not answer -> reverted after the grace period
        moved = json.loads(json.dumps(cfg["sources"]))
        moved[0]["endpoint"] = f"opc.tcp://127.0.0.1:{free_port()}"
        set_overlay(hub_db, "gw-a", {"sources": moved}, "ops", "new PLC")
        await wait_for(lambda: config_state(hub_db, "gw-a").get("state") == "reverted", 30, "reverted")
        assert agent.config.sources[0].endpoint == cfg["sources"][0]["endpoint"]
        await wait_for(lambda: agent.sources[0].status.connected, 20, "original source back")
        assert agent.config.features.max_age_s == 7.0  # back to the last good: overlay 1

    # the last good overlay survives a restart; the hub still holds the failed one, which stays refused
    async with running_agent(cfg) as again:
        assert again.config.features.max_age_s == 7.0 and again.remote is not None
        assert again.remote.state == "applied"
        await wait_for(lambda: again.sync is not None and again.sync.polls >= 3, 10, "polls")
        assert again.config.sources[0].endpoint == cfg["sources"][0]["endpoint"]  # not tried again

    assert main(["audit", "verify", "--config", str(config_file)]) == 0
    assert main(["audit", "export", "--config", str(config_file), "--since", "2000-01-01"]) == 0
    actions = [json.loads(line)["action"] for line in capsys.readouterr().out.splitlines()[1:]]
    for action in ("config_applied", "config_confirmed", "config_rejected", "config_reverted"):
        assert action in actions, action
    log_file = tmp_path / "a" / "audit.log"
    lines = log_file.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["why"] = "nothing to see here"  # an edit without re-hashing the chain
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    log_file.write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", "--config", str(config_file)]) == 2
    assert "line 2 (entry 2)" in capsys.readouterr().err

"""Every link's state is visible: a broker restart makes /readyz degraded (with the reason)
while inference goes on, drops are counted exactly and logged once, and all is well after;
`status` of a stopped agent says so, with dates and ages."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.aio.loglimit import install
from agent.cli import main
from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.demo.sim.process import COUNTER_TAG
from tests.helpers.running import base_config, http_get, opcua_source, running_agent, wait_for

QUEUE = 10


async def readyz(agent: Any) -> tuple[int, dict[str, Any]]:
    code, body = await http_get(agent.health_server.port, "/readyz")
    return code, json.loads(body)


async def test_broker_restart_is_visible_and_drops_are_counted(
        tmp_path: Path, private_broker: Any, trained: dict[str, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    # the agent's own log limiter, as its log setup installs it; caplog's handler lives for the
    # whole session, so conftest takes the limiter off after the test (a CI run lost a later
    # test's "connection lost" lines to this limiter's memory of this test's)
    install(caplog.handler)
    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port)) as line:
        cfg = base_config(tmp_path, [opcua_source(port, line.ns)],
                          features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
                          model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]},
                          outputs={"mqtt": {"queue_size": QUEUE, "broker": {
                              "host": "127.0.0.1", "port": private_broker.port,
                              "reconnect": {"initial_s": 0.2, "max_s": 0.5}}}})
        async with running_agent(cfg) as agent:
            out = agent.publisher
            await wait_for(lambda: out.status.connected and agent.sources[0].status.connected, 15, "up")
            assert (await readyz(agent))[1]["degraded"] == []
            private_broker.stop()  # the broker goes away
            await wait_for(lambda: not out.status.connected, 15, "outage noticed")
            code, doc = await readyz(agent)
            assert code == 200 and doc["ready"]  # the line is served: degraded, not down
            assert any("predictions out (mqtt-out) down" in d for d in doc["degraded"]), doc
            _, metrics = await http_get(agent.health_server.port, "/metrics")
            assert 'edge_link_connected{kind="mqtt-out",link="predictions-out",role="output"} 0.0' \
                in metrics
            assert 'edge_link_down_reason{kind="mqtt-out",link="predictions-out",reason=' in metrics
            before = agent.predictions
            for _ in range(QUEUE + 15):
                await line.make_part()
                await asyncio.sleep(0.02)
            await wait_for(lambda: agent.predictions >= before + QUEUE + 15, 15, "inference goes on")
            made = agent.predictions - before
            assert out.dropped == made - QUEUE == out.status.dropped  # exactly the overflow
            drop_logs = [r for r in caplog.records if "prediction(s) dropped" in r.getMessage()]
            assert len(drop_logs) == 1 and "so far" in drop_logs[0].getMessage()
            published = out.published
            private_broker.start()  # back on the same port
            await wait_for(lambda: out.status.connected, 15, "reconnected")
            await wait_for(lambda: out.published >= published + QUEUE, 10, "the queue drained")
            code, doc = await readyz(agent)
            assert code == 200 and doc["degraded"] == []


def test_status_of_a_stopped_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    cfg = base_config(tmp_path, [opcua_source(free_port())])
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    link = {"name": "plc", "kind": "opcua", "role": "source", "connected": True, "readings": 5,
            "connected_since": now - 4 * 3600, "changed_at": now - 4 * 3600}
    (tmp_path / "status.json").write_text(json.dumps({
        "updated": now - 3 * 3600, "started": now - 5 * 3600, "links": [link],
        "sync": {"connected": True, "last_success": now - 3 * 3600 - 5}}))
    assert main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "NOT RUNNING; last seen " in out and "(3.0 h ago)" in out
    assert "was connected since" in out and "was reachable, last sync" in out
    day = time.strftime("%Y-%m-%d", time.localtime(now - 3 * 3600))
    assert day in out

"""A PLC that limits monitored items (4 per subscription: 9 nodes in 3 subscriptions) and keeps
only the newest value of an item without a queue, with a fast trigger (10 parts/s): the trigger
tag's monitored-item queue loses no part; without it parts are lost; a counter that jumps is
counted as parts missed (metric and status)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from asyncua import ua

from agent.cli import main
from agent.demo.sim.broker import free_port
from agent.demo.sim.limits import PlcLimits
from agent.demo.sim.line import SimOptions, SimulatedLine, node_id
from agent.demo.sim.process import COUNTER_TAG
from agent.ingest.sources.opcua import OpcUaSource
from tests.helpers.running import base_config, http_get, running_agent, seen_readings, wait_for

PARTS = 40


def config(tmp_path: Path, port: int, ns: int, trained: dict[str, Path],
           **source: Any) -> dict[str, Any]:
    from agent.demo.sim.process import PROCESS_TAGS

    src = {"type": "opcua", "name": "plc", "endpoint": f"opc.tcp://127.0.0.1:{port}/sim",
           "nodes": [{"tag": t, "node_id": node_id(t, ns)} for t in [*PROCESS_TAGS, COUNTER_TAG]],
           **source}  # default publishing (500 ms) and sampling intervals: a real line's
    return base_config(tmp_path, [src], features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
                       model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]},
                       outbox={"flush_interval_s": 60})


async def run_line(tmp_path: Path, trained: dict[str, Path],
                   **source: Any) -> tuple[int, int, set[float]]:
    port = free_port()
    options = SimOptions(opcua_port=port, cycle_s=30, speed=300,  # 10 parts per second
                         limits=PlcLimits(max_items_per_subscription=4))
    async with SimulatedLine(options) as line:
        async with running_agent(config(tmp_path, port, line.ns, trained, **source)) as agent:
            plc = agent.sources[0]
            assert isinstance(plc, OpcUaSource)
            await wait_for(lambda: plc.status.connected and agent.builder is not None, 15, "up")
            await asyncio.sleep(0.6)  # the initial values (a state, not a part) are in
            await line.run_machine(stop_after=PARTS)
            builder = agent.builder
            assert builder is not None
            await wait_for(lambda: builder.samples + builder.invalid_total + builder.parts_missed
                           >= PARTS, 10, "every part accounted for")
            seen = {r.value for r in seen_readings(agent) if r.tag == COUNTER_TAG}
            return plc.subscriptions, builder.parts_missed, seen


async def test_trigger_queue_misses_no_part_under_subscription_limits(
        tmp_path: Path, trained: dict[str, Path]) -> None:
    subs, missed, seen = await run_line(tmp_path / "queued", trained)
    assert subs == 3  # the server's limit, learned from its capabilities
    assert missed == 0 and {float(i) for i in range(1, PARTS + 1)} <= seen
    # the same line without the queue (the OPC UA default, newest value only) loses parts
    _, missed_unqueued, seen_unqueued = await run_line(
        tmp_path / "unqueued", trained, event_queue={"size": 1})
    print(f"\n{PARTS} parts at 10/s, 9 nodes in {subs} subscriptions: {missed} missed with the "
          f"trigger queue, {missed_unqueued} missed without it")
    assert missed_unqueued > 0 and len(seen_unqueued & set(map(float, range(1, PARTS + 1)))) < PARTS


async def test_a_counter_gap_is_counted_in_metrics_and_status(
        tmp_path: Path, trained: dict[str, Path], capsys: Any) -> None:
    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port)) as line:
        cfg = config(tmp_path, port, line.ns, trained, publishing_interval_ms=50)
        async with running_agent(cfg) as agent:
            await wait_for(lambda: agent.sources[0].status.connected and agent.builder is not None,
                           15, "up")
            await line.make_part()
            await wait_for(lambda: agent.builder.samples >= 1, 10, "part 1")
            counter = line.server.get_node(node_id(COUNTER_TAG, line.ns))
            await line.server.write_attribute_value(  # the PLC counted 9 parts we never saw
                counter.nodeid, ua.DataValue(ua.Variant(11, ua.VariantType.Int64)))
            await wait_for(lambda: agent.builder.parts_missed == 9, 10, "gap counted")
            assert agent.builder.counter_gaps == 1
            assert agent.health_server is not None
            _, metrics = await http_get(agent.health_server.port, "/metrics")
            assert "edge_parts_missed_total{model=\"moulding-nok\"} 9.0" in metrics
            await wait_for(lambda: '"parts_missed": 9' in (tmp_path / "status.json").read_text(),
                           10, "status.json")
    assert main(["status", "--config", str(write(tmp_path, cfg))]) == 0
    assert "parts missed 9" in capsys.readouterr().out


def write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    import yaml

    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path

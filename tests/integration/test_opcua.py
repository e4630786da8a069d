"""OPC UA against a real in-process asyncua server: data flows, splits, and comes back."""

from __future__ import annotations

from pathlib import Path

from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.ingest.sources.opcua import OpcUaSource
from tests.helpers.running import base_config, opcua_source, running_agent, seen_readings, wait_for


def plc(agent: object) -> OpcUaSource:
    source = agent.sources[0]  # type: ignore[attr-defined]
    assert isinstance(source, OpcUaSource)
    return source


async def test_readings_carry_timestamps_and_quality(tmp_path: Path) -> None:
    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port)) as line:
        cfg = base_config(tmp_path, [opcua_source(port, line.ns)])
        async with running_agent(cfg) as agent:
            await wait_for(lambda: plc(agent).status.readings >= 9, what="initial values")
            await line.make_part()
            await wait_for(lambda: any(r.tag == "part_counter" and r.value == 1.0
                                       for r in seen_readings(agent)), what="counter=1")
            reading = next(r for r in seen_readings(agent) if r.tag == "part_counter" and r.value == 1.0)
            assert reading.source == "plc" and reading.quality == "good"
            assert abs(reading.receive_ts - reading.source_ts) < 2.0


async def test_subscriptions_split_at_the_item_limit(tmp_path: Path) -> None:
    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port)) as line:
        cfg = base_config(tmp_path, [opcua_source(port, line.ns, max_items_per_subscription=4)])
        async with running_agent(cfg) as agent:
            await wait_for(lambda: plc(agent).status.connected, what="connected")
            assert plc(agent).subscriptions == 3  # 9 nodes in chunks of 4
            before = plc(agent).status.readings
            await line.make_part()
            await wait_for(lambda: plc(agent).status.readings >= before + 9, what="all 9 tags")


async def test_server_restart_resubscribes_and_data_flows_again(tmp_path: Path) -> None:
    port = free_port()
    opts = SimOptions(opcua_port=port)
    line = SimulatedLine(opts)
    await line.__aenter__()
    cfg = base_config(tmp_path, [opcua_source(port, line.ns)])
    async with running_agent(cfg) as agent:
        source = plc(agent)
        await wait_for(lambda: source.status.connected, what="first connect")
        await line.make_part()
        await wait_for(lambda: source.status.readings >= 18, what="data before restart")
        await line.__aexit__(None, None, None)  # the PLC goes away
        await wait_for(lambda: not source.status.connected, 15, "agent notices the outage")
        line = SimulatedLine(opts)  # a new server process on the same endpoint
        await line.__aenter__()
        try:
            await wait_for(lambda: source.status.connected, 20, "reconnect")
            assert source.status.reconnects >= 1
            count = source.status.readings
            for _ in range(3):
                await line.make_part()
            await wait_for(lambda: source.status.readings >= count + 27, 10, "data after restart")
        finally:
            await line.__aexit__(None, None, None)


async def test_unreachable_server_does_not_stop_the_agent(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, [opcua_source(free_port())])
    async with running_agent(cfg) as agent:
        await wait_for(lambda: plc(agent).status.attempts >= 3, 10, "retries (TCP probes)")
        assert not plc(agent).status.connected
        assert plc(agent).status.last_error and plc(agent).status.reason == "connection_refused"
        assert agent.health["source:plc"].restarts == 0  # handled inside, not crashed


async def test_status_codes_become_reading_quality(tmp_path: Path) -> None:
    from asyncua import ua

    from agent.demo.sim.line import node_id

    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port)) as line:
        cfg = base_config(tmp_path, [opcua_source(port, line.ns)])
        cfg["outbox"] = {"flush_interval_s": 60}  # keep the readings in memory to look at them
        async with running_agent(cfg) as agent:
            await wait_for(lambda: plc(agent).status.readings >= 9, what="initial values")
            server = line.server
            for value, code in ((1.5, ua.StatusCodes.UncertainLastUsableValue),
                                (2.5, ua.StatusCodes.BadSensorFailure)):
                await server.write_attribute_value(
                    server.get_node(node_id("mould_temp", line.ns)).nodeid,
                    ua.DataValue(ua.Variant(value, ua.VariantType.Double), StatusCode=ua.StatusCode(code)))
                count = plc(agent).status.readings
                await wait_for(lambda c=count: plc(agent).status.readings > c, what=f"value {value}")
            qualities = [(r.value, r.quality) for r in seen_readings(agent) if r.tag == "mould_temp"]
            assert (1.5, "stale") in qualities
            bad = [v for v, q in qualities if q == "bad"]
            assert bad and all(v != v for v in bad)  # a Bad value is NaN, never a stale number

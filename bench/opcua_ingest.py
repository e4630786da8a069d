"""OPC UA ingest: notifications per second the agent handles from 500 subscribed variables,
and the CPU it spends doing so. The server (in this process) changes every variable as fast as
it can; the agent runs as its own process, as in production."""

from __future__ import annotations

import asyncio
import time

from asyncua import ua

from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.service.agent import read_status
from bench.agentproc import AgentProcess
from bench.common import emit, quick, scratch_dir, use_all_cores

VARIABLES = 500


async def run(seconds: float) -> None:
    port = free_port()
    state = scratch_dir("bench-opcua-")
    async with SimulatedLine(SimOptions(opcua_port=port, extra_vars=VARIABLES)) as line:
        nodes = [{"tag": f"extra_{i}", "node_id": f"ns={line.ns};s=Machine1.Extra{i}"}
                 for i in range(VARIABLES)]
        config = {
            "gateway_id": "bench", "state_dir": str(state),
            "sources": [{"type": "opcua", "name": "plc", "endpoint": f"opc.tcp://127.0.0.1:{port}/sim",
                         "publishing_interval_ms": 100, "sampling_interval_ms": 0, "nodes": nodes}],
            "outbox": {"flush_interval_s": 0.5},
            "health": {"port": 0},
        }
        agent = AgentProcess(config, state)
        try:
            def received() -> int:
                status = read_status(state)
                return int(status["sources"][0]["readings"]) if status else 0

            deadline = time.monotonic() + 30
            while received() < VARIABLES and time.monotonic() < deadline:  # noqa: ASYNC110 - a file
                await asyncio.sleep(0.2)
            writes = 0
            stop_at = time.monotonic() + seconds
            start_readings, start_cpu, start = received(), agent.cpu_seconds(), time.monotonic()
            value = 0.0
            while time.monotonic() < stop_at:
                value += 1.0
                for node in line.extra_nodes:
                    await line.server.write_attribute_value(node.nodeid, ua.DataValue(ua.Variant(value)))
                writes += VARIABLES
                await asyncio.sleep(0)
            await asyncio.sleep(2.5)  # let the last status file land (written every 2 s)
            elapsed = time.monotonic() - start
            got = received() - start_readings
            cpu = agent.cpu_seconds() - start_cpu
        finally:
            agent.stop()
    emit(bench="opcua_ingest", variables=VARIABLES, server_writes_per_s=round(writes / (elapsed - 2.5)),
         notifications_per_s=round(got / elapsed), agent_cpu_percent=round(100 * cpu / elapsed, 1),
         cpu_us_per_notification=round(1e6 * cpu / max(1, got), 1),
         reference="asyncua client alone: ~22,000/s at 34% of a core (REFERENCE.md)")


def main() -> None:
    use_all_cores()
    asyncio.run(run(5.0 if quick() else 20.0))


if __name__ == "__main__":
    main()

"""PLC restarts with the DEFAULT settings: data flows again within 5 s of the server's return,
without more than one connection attempt per second on average while it is down, and asyncua's
own error logs about the closed connection become WARNING lines without tracebacks."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine, node_id
from agent.demo.sim.process import COUNTER_TAG, PROCESS_TAGS
from agent.ingest.sources.opcua import OpcUaSource
from tests.helpers.running import base_config, running_agent, wait_for

DOWN_S = 4.0


def default_source(port: int, ns: int) -> dict[str, Any]:
    """Only what a user must write: no reconnect, watchdog or interval settings."""
    return {"type": "opcua", "name": "plc", "endpoint": f"opc.tcp://127.0.0.1:{port}/sim",
            "nodes": [{"tag": t, "node_id": node_id(t, ns)} for t in [*PROCESS_TAGS, COUNTER_TAG]]}


async def test_three_plc_restarts_with_default_settings(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    options = SimOptions(opcua_port=port)
    line = SimulatedLine(options)
    await line.__aenter__()
    back_after: list[float] = []
    rates: list[float] = []
    try:
        async with running_agent(base_config(tmp_path, [default_source(port, line.ns)])) as agent:
            source = agent.sources[0]
            assert isinstance(source, OpcUaSource)
            await wait_for(lambda: source.status.connected and source.status.readings >= 9, 15,
                           "first connect")
            for _ in range(3):
                await line.__aexit__(None, None, None)  # the PLC goes away
                await wait_for(lambda: not source.status.connected, 15, "outage noticed")
                first = source.status.attempts
                await wait_for(lambda f=first: source.status.attempts > f, 5, "first probe")
                # from the first probe on: the steady rate a server that is down sees
                down_at, attempts = time.monotonic(), source.status.attempts
                await asyncio.sleep(DOWN_S)
                made = source.status.attempts - attempts
                rates.append(made / (time.monotonic() - down_at))
                line = SimulatedLine(options)  # the PLC is back, a new server on the same port
                await line.__aenter__()
                up_at, readings = time.monotonic(), source.status.readings
                await wait_for(lambda r=readings: source.status.readings > r, 10, "data again")
                back_after.append(time.monotonic() - up_at)
                assert source.status.connected
    finally:
        await line.__aexit__(None, None, None)
    print(f"\nreadings again after the server returned: {[round(t, 2) for t in back_after]} s; "
          f"attempts per second while down: {[round(r, 2) for r in rates]}")
    assert all(t < 5.0 for t in back_after), back_after
    assert all(r <= 1.0 for r in rates), rates
    asyncua = [r for r in caplog.records if r.name.startswith("asyncua.client")
               or r.name.startswith("asyncua.common")]
    assert not [r for r in asyncua if r.levelno >= logging.ERROR], "asyncua logged at ERROR"
    assert not [r for r in asyncua if r.exc_info], "asyncua logged a traceback"
    crashed = [r for r in asyncua if "Publish iteration crashed" in r.getMessage()]
    assert len(crashed) <= 1 and all(r.levelno == logging.WARNING for r in crashed)
    lost = [r for r in caplog.records if r.name.startswith("agent.ingest.sources.opcua")
            and "lost" in r.getMessage()]
    # the source says so itself (one line per outage, fewer when the agent's log limiter holds
    # back repeats within a minute)
    assert 1 <= len(lost) <= 3

"""Run a real Agent in the test's event loop, and wait for conditions without fixed sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from agent.demo.sim.line import node_id
from agent.demo.sim.process import COUNTER_TAG, PROCESS_TAGS
from agent.service.agent import Agent
from agent.types import Reading

# every reading each running agent handed its recorder, in order (see seen_readings)
_SEEN: weakref.WeakKeyDictionary[Agent, list[Reading]] = weakref.WeakKeyDictionary()


def seen_readings(agent: Agent) -> list[Reading]:
    """The readings the agent took in so far. Not the recorder's pending list: each flush (every
    0.1 s in these configs) empties that, so a test that polls it races the flusher and, on a
    loaded machine, can miss a reading that did arrive."""
    return _SEEN[agent]


def _tap_readings(agent: Agent) -> None:
    seen: list[Reading] = []
    hand_over = agent.recorder.reading

    def reading(r: Reading) -> None:
        seen.append(r)
        hand_over(r)

    agent.recorder.reading = reading  # type: ignore[method-assign]
    _SEEN[agent] = seen


async def wait_for(condition: Callable[[], bool], within: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or condition}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_agent(config: dict[str, Any]) -> AsyncIterator[Agent]:
    agent = Agent.from_raw(config)
    _tap_readings(agent)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await wait_for(lambda: agent.ready.is_set() or task.done(), 20, "agent ready")
        if task.done():
            task.result()
        yield agent
    finally:
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=15)
        if not done:  # say where the shutdown hangs before failing
            for t in asyncio.all_tasks():
                t.print_stack(limit=6)
            raise AssertionError("agent did not stop within 15 s")
        task.result()


async def collect_json(port: int, topic_filter: str, sink: list[dict[str, Any]]) -> None:
    """Subscribe to a real broker and append every JSON message (with its topic) to ``sink``;
    runs until cancelled."""
    import json

    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic_filter, qos=1)
        async for msg in client.messages:
            assert isinstance(msg.payload, bytes)
            sink.append({"topic": str(msg.topic), **json.loads(msg.payload)})


def opcua_source(port: int, ns: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "type": "opcua", "name": "plc", "endpoint": f"opc.tcp://127.0.0.1:{port}/sim",
        "publishing_interval_ms": 50, "sampling_interval_ms": 0, "watchdog_s": 0.5,
        "timeout_s": 2.0, "reconnect": {"initial_s": 0.2, "max_s": 1.0},
        "nodes": [{"tag": t, "node_id": node_id(t, ns)} for t in [*PROCESS_TAGS, COUNTER_TAG]],
        **extra,
    }


def base_config(state: Path, sources: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"gateway_id": "test-gw", "state_dir": str(state), "sources": sources,
            "outbox": {"flush_interval_s": 0.1}, "health": {"port": 0}, **extra}


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = (await reader.read()).decode()
    writer.close()
    head, _, body = raw.partition("\r\n\r\n")
    return int(head.split()[1]), body

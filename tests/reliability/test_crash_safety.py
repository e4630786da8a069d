"""kill -9 during heavy writes loses nothing acknowledged; SIGTERM shuts down cleanly and fast."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.demo.sim.process import COUNTER_TAG
from agent.service.agent import read_status
from agent.store.outbox import Outbox
from tests.helpers.running import base_config, opcua_source, wait_for

ROOT = Path(__file__).parents[2]


def _connected(state: Path) -> bool:
    status = read_status(state)
    return bool(status and status["sources"][0]["connected"])


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
@pytest.mark.parametrize("kill_after", [0.7, 1.9])
def test_kill_9_keeps_every_acknowledged_record(tmp_path: Path, synchronous: str, kill_after: float) -> None:
    db = tmp_path / "outbox.db"
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/reliability/outbox_writer.py"), str(db), synchronous],
        stdout=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout is not None
    acked = 0
    deadline = time.monotonic() + kill_after
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acked = int(line)
    child.send_signal(signal.SIGKILL)  # mid-write: the child never stops appending
    child.wait()
    assert acked > 0, "the writer never acknowledged anything"

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    box = Outbox(db, 1 << 30)
    seqs = [r.seq for r in box.peek(limit=10**7, max_bytes=1 << 40)]
    assert seqs[: acked] == list(range(1, acked + 1))  # every acknowledged record, in order
    assert box.append([]) >= acked  # and new seqs continue after them


async def test_sigterm_stops_within_10s_and_flushes(tmp_path: Path, trained: dict[str, Path]) -> None:
    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port, speed=200)) as line:
        cfg: dict[str, Any] = base_config(
            tmp_path, [opcua_source(port, line.ns)],
            features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
            model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]},
        )
        cfg["outbox"] = {"flush_interval_s": 30}  # only the shutdown flush can write predictions
        config = tmp_path / "agent.yaml"
        config.write_text(yaml.safe_dump(cfg))
        proc = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv/bin/edge-agent") if (ROOT / ".venv/bin/edge-agent").exists() else "edge-agent",
            "run", "--config", str(config), stderr=asyncio.subprocess.PIPE)
        await wait_for(lambda: _connected(tmp_path), 30, "agent connected to the PLC")
        machine = asyncio.create_task(line.run_machine(stop_after=40))
        await machine
        await asyncio.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        rc = await asyncio.wait_for(proc.wait(), 15)
        took = time.monotonic() - started
        stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
    assert rc == 0, stderr
    assert took < 10
    assert "Traceback" not in stderr
    box = Outbox(tmp_path / "outbox.db", 1 << 30)
    predictions = sum(r.items for r in box.peek(limit=1000, max_bytes=1 << 30) if r.kind == "predictions")
    assert predictions == 40


async def test_flush_cancelled_at_shutdown_loses_nothing(tmp_path: Path) -> None:
    """The flusher can be cancelled (shutdown) while its write waits behind another outbox call:
    the records it took from the pending lists must still be written."""
    import time as _time

    from agent.config import parse_config
    from agent.service.agent import Agent
    from agent.store.codec import decode_json
    from agent.store.outbox import AsyncOutbox

    cfg = parse_config({"gateway_id": "gw", "state_dir": str(tmp_path), "health": {"enabled": False},
                        "sources": [{"type": "opcua", "name": "plc", "endpoint": "opc.tcp://127.0.0.1:1",
                                     "nodes": [{"node_id": "ns=2;i=1", "tag": "x"}]}]})
    agent = Agent(cfg)
    async with AsyncOutbox(tmp_path / "outbox.db", 1 << 30) as outbox:
        agent.outbox = outbox
        busy = asyncio.ensure_future(outbox._call(_time.sleep, 0.3))  # the outbox thread is busy
        agent._pending_events.append({"level": "ok", "top_features": ["acknowledged by shift-lead"]})
        flush = asyncio.ensure_future(agent._flush())
        await asyncio.sleep(0.05)
        flush.cancel()  # as the TaskGroup does at shutdown
        await asyncio.gather(flush, return_exceptions=True)
        await busy
        await asyncio.wait(set(agent._writes), timeout=5)
        records = await outbox.peek(100, 1 << 20)
        stored = [e for r in records if r.kind == "events" for e in decode_json(r.payload)]
    assert stored == [{"level": "ok", "top_features": ["acknowledged by shift-lead"]}]

"""Store-and-forward to a real hub, on SQLite and PostgreSQL: the hub process killed in the
middle of uploads, and a hub outage as long as 10,000 new records. Every record arrives, once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.config import BackoffConfig, HubConfig
from agent.demo.sim.broker import free_port
from agent.hublink.uploader import Uploader
from agent.store.outbox import AsyncOutbox, NewRecord, Priority
from hub.server import HubServer
from hub.storage import Telemetry, add_gateway
from tests.helpers.running import wait_for


class HubProcess:
    """`python -m hub serve` as its own process, which the test can kill -9 and start again."""

    def __init__(self, db_url: str, data: Path, port: int) -> None:
        self.args = [sys.executable, "-m", "hub", "--db", db_url, "--data", str(data), "serve",
                     "--port", str(port)]
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/docs", timeout=0.5)
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"hub exited: {self.proc.stderr.read().decode()[-2000:]}"
                                         if self.proc.stderr else "hub exited") from None
                time.sleep(0.1)
        raise AssertionError("hub process did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture()
def hub_process(engine: Engine, tmp_path: Path) -> Iterator[HubProcess]:
    hub = HubProcess(engine.url.render_as_string(hide_password=False), tmp_path / "hub-data", free_port())
    yield hub
    hub.kill()


def hub_config(url: str, token: str) -> HubConfig:
    return HubConfig(url=url, token=token, upload_interval_s=0.05, upload_batch=250,
                     reconnect=BackoffConfig(initial_s=0.05, max_s=0.3))


def records(start: int, n: int) -> list[NewRecord]:
    return [NewRecord("readings", Priority.READINGS, f"reading {start + i:08d}".encode() * 4, 1)
            for i in range(n)]


def stored(engine: Engine, gateway_id: str) -> tuple[int, int]:
    with Session(engine) as s:
        q = select(func.count(), func.count(func.distinct(Telemetry.seq))).where(
            Telemetry.gateway_id == gateway_id)
        total, distinct = s.execute(q).one()
    return int(total), int(distinct)


async def test_hub_killed_during_uploads_every_record_arrives_once(
        engine: Engine, hub_process: HubProcess, tmp_path: Path) -> None:
    token = add_gateway(engine, "gw-up")
    hub_process.start()
    async with AsyncOutbox(tmp_path / "outbox.db", 1 << 30) as outbox:
        for start in range(0, 20_000, 2_000):
            await outbox.append(records(start, 2_000))
        uploader = Uploader(hub_config(f"http://127.0.0.1:{hub_process.port}", token), "gw-up", outbox)
        task = asyncio.create_task(uploader.run())
        kills = 0
        for _ in range(3):  # kill -9 the hub three times while batches are in flight
            target = uploader.uploaded_batches + 8
            await wait_for(lambda t=target: uploader.uploaded_batches >= t, 60, "uploads in flight")
            await asyncio.to_thread(hub_process.kill)
            kills += 1
            await asyncio.sleep(0.3)
            await asyncio.to_thread(hub_process.start)
        await wait_for(lambda: stored(engine, "gw-up")[1] >= 20_000, 120, "all records at the hub")
        await wait_for(lambda: uploader.status.connected, 10, "uploader reconnected")
        await asyncio.sleep(0.3)
        assert (await outbox.stats()).depth == 0  # everything acknowledged
        task.cancel()
    total, distinct = stored(engine, "gw-up")
    assert kills == 3 and total == distinct == 20_000  # every record, none twice


async def test_outage_of_10000_records_is_delivered_afterwards(engine: Engine, tmp_path: Path) -> None:
    token = add_gateway(engine, "gw-out")
    server = HubServer(engine, tmp_path / "hub-data")  # down while the records pile up
    async with AsyncOutbox(tmp_path / "outbox.db", 1 << 30) as outbox:
        uploader = Uploader(hub_config(server.url, token), "gw-out", outbox)
        task = asyncio.create_task(uploader.run())
        for start in range(0, 10_000, 500):  # new data keeps arriving during the outage
            await outbox.append(records(start, 500))
            await asyncio.sleep(0.02)
        assert uploader.uploaded_records == 0 and uploader.status.reconnects > 0
        assert (await outbox.stats()).depth == 10_000
        await asyncio.to_thread(server.start)
        try:
            await wait_for(lambda: uploader.uploaded_records >= 10_000, 60, "backlog drained")
            assert (await outbox.stats()).depth == 0
        finally:
            task.cancel()
            await asyncio.to_thread(server.stop)
    total, distinct = stored(engine, "gw-out")
    assert total == distinct == 10_000


async def test_a_record_the_hub_refuses_is_set_aside_and_the_rest_still_arrives(
        engine: Engine, tmp_path: Path) -> None:
    """One malformed record (here a kind the hub's schema refuses) must not block the gateway's
    whole backlog behind it for ever: it is isolated by halving, kept aside, counted."""
    token = add_gateway(engine, "gw-poison")
    server = HubServer(engine, tmp_path / "hub-data")
    await asyncio.to_thread(server.start)
    try:
        async with AsyncOutbox(tmp_path / "outbox.db", 1 << 30) as outbox:
            good = records(0, 600)
            await outbox.append([*good[:333], NewRecord("Not A Kind!", Priority.EVENTS, b"x"),
                                 *good[333:]])
            uploader = Uploader(hub_config(server.url, token), "gw-poison", outbox)
            task = asyncio.create_task(uploader.run())
            try:
                await wait_for(lambda: uploader.uploaded_records >= 600, 60, "the rest delivered")
                stats = await outbox.stats()
                assert stats.depth == 0 and stats.refused_records == 1
                assert uploader.refused_records == 1
            finally:
                task.cancel()
            kept = outbox.core._conn.execute("SELECT seq, kind, reason FROM refused").fetchall()
            assert [(k, r.split(":")[0]) for _, k, r in kept] == [("Not A Kind!", "hub answered 422")]
            assert kept[0][0] == 334  # the record itself, found by halving
    finally:
        await asyncio.to_thread(server.stop)
    total, distinct = stored(engine, "gw-poison")
    assert total == distinct == 600

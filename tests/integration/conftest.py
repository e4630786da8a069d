"""Fixtures of the hub and lifecycle tests: a hub over loopback HTTP on SQLite, and the
simulated line with its QC station."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from hub.server import HubServer
from hub.storage import migrate


@pytest.fixture()
def hub_db(tmp_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture()
def hub(hub_db: Engine, tmp_path: Path, trained: dict[str, Path]) -> Iterator[HubServer]:
    server = HubServer(hub_db, tmp_path / "hub-data", keys=[trained["pub"]], evaluate_interval_s=0.2)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
async def line(broker: Any) -> AsyncIterator[SimulatedLine]:
    options = SimOptions(opcua_port=free_port(), mqtt_port=broker.port, speed=300, qc_delay_s=30)
    async with SimulatedLine(options) as sim:
        qc = asyncio.create_task(sim.run_qc_station())
        yield sim
        qc.cancel()

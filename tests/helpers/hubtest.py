"""Helpers of the hub and lifecycle tests: an agent config that syncs with a hub fast, and
what the hub recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.demo.sim.line import SimulatedLine
from agent.demo.sim.process import COUNTER_TAG
from agent.service.agent import Agent
from agent.store.codec import decode_json
from hub.server import HubServer
from hub.storage import GatewayStatus, Telemetry
from tests.helpers.running import base_config, opcua_source


def agent_config(state: Path, line: SimulatedLine, hub: HubServer, token: str, broker: Any,
                 gateway_id: str, trained: dict[str, Path], **rollback: Any) -> dict[str, Any]:
    mqtt = {"host": "127.0.0.1", "port": broker.port}
    cfg = base_config(
        state, [opcua_source(line.options.opcua_port, line.ns)],
        features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
        model={"trusted_keys": [str(trained["pub"])], "rollback": {"watch_s": 60, **rollback}},
        labels={"type": "mqtt", "broker": mqtt, "topic": "plant/line1/qc"},
        hub={"url": hub.url, "token": token, "upload_interval_s": 0.2, "poll_interval_s": 0.2,
             "poll_jitter": 0.1, "report_interval_s": 0.3,
             "reconnect": {"initial_s": 0.1, "max_s": 0.5}})
    cfg["gateway_id"] = gateway_id
    return cfg


def active(agent: Agent) -> str | None:
    return agent.model.version if agent.model else None


def report(engine: Engine, gateway_id: str) -> dict[str, Any]:
    with Session(engine) as s:
        row = s.get(GatewayStatus, gateway_id)
        return dict(row.report) if row else {}


def rejected_at_hub(engine: Engine, gateway_id: str, version: str) -> str | None:
    for r in report(engine, gateway_id).get("rejected") or []:
        if r.get("version") == version:
            return str(r.get("reason"))
    return None


def lifecycle_events(engine: Engine, gateway_id: str, kind: str = "lifecycle") -> list[Any]:
    with Session(engine) as s:
        blobs = s.scalars(select(Telemetry.payload).where(Telemetry.gateway_id == gateway_id,
                                                          Telemetry.kind == kind)
                          .order_by(Telemetry.seq)).all()
    return [e.get("event", e) if kind == "lifecycle" else e for blob in blobs for e in decode_json(blob)]


def publish_unchecked(engine: Engine, data_dir: Path, bundle_path: Path, keys: list[Path]) -> None:
    """Register a signed bundle without the hub's load and self-test check: what an older hub, or
    one whose runtime passes a model the gateway's fails, would serve. The gateway must still
    refuse it."""
    import shutil
    import tempfile

    from agent.models.bundle import unpack, verify_bundle
    from hub.registry import register

    staging = Path(tempfile.mkdtemp(prefix="unchecked-"))
    try:
        register(engine, data_dir, verify_bundle(unpack(bundle_path, staging), keys))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

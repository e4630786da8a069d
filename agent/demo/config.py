"""The demo gateway's agent config: the simulated line's OPC UA tags, the QC results as labels,
and its models: the quality classifier (from the hub) and the cycle-time regressor (its bundle
from disk, its labels the measured cycle times)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.demo.bundles import CYCLE_MODEL, QUALITY_MODEL
from agent.demo.sim.line import node_id
from agent.demo.sim.process import COUNTER_TAG, CYCLE_LABEL, PROCESS_TAGS

QC_TOPIC, CYCLE_TOPIC = "plant/line1/qc", "plant/line1/cycle"  # as SimOptions sends them
# The demo's machine also runs the hub, the simulator and the broker, and each model infers on
# its own thread: a batch of a sub-millisecond model then waits for the interpreter lock (5 ms
# switch interval) a few times, and a p99 of 10-15 ms is the machine's load, not the version.
# A version truly slower than its predecessor is judged above 50 ms.
ROLLBACK = {"watch_s": 6.0, "min_labels": 30, "accuracy_margin": 0.05}


def broker_of(mqtt_port: int) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": mqtt_port}


def quality_entry(public_key: Path, bundle: Path | None = None, name: str = QUALITY_MODEL) -> dict[str, Any]:
    """No bundle: the first version comes from the hub, like every later one."""
    return {"name": name, "bundle": None if bundle is None else str(bundle),
            "trusted_keys": [str(public_key)],
            "rollback": dict(ROLLBACK)}


def cycle_entry(public_key: Path, bundle: Path, mqtt_port: int) -> dict[str, Any]:
    """The cycle-time regressor: its labels are the measured cycle times, not the QC verdicts."""
    return {"name": CYCLE_MODEL, "bundle": str(bundle), "trusted_keys": [str(public_key)],
            "rollback": dict(ROLLBACK),
            "labels": {"type": "mqtt", "broker": broker_of(mqtt_port), "topic": CYCLE_TOPIC,
                       "sample_id_field": "serial", "label_field": CYCLE_LABEL}}


def agent_config(out: Path, opcua_port: int, ns: int, mqtt_port: int,
                 models: list[dict[str, Any]]) -> dict[str, Any]:
    broker = broker_of(mqtt_port)
    return {
        "gateway_id": "demo-line-1",
        "state_dir": str(out / "state"),
        "sources": [{
            "type": "opcua", "name": "plc", "endpoint": f"opc.tcp://127.0.0.1:{opcua_port}/sim",
            "publishing_interval_ms": 50, "sampling_interval_ms": 0, "watchdog_s": 1.0,
            "nodes": [{"tag": t, "node_id": node_id(t, ns)} for t in [*PROCESS_TAGS, COUNTER_TAG]],
        }],
        "features": {"mode": "trigger", "trigger_tag": COUNTER_TAG, "max_age_s": 5.0},
        "models": models,
        "outputs": {"mqtt": {"broker": broker, "topic": "edge/{gateway_id}/{model}/predictions"}},
        # the QC verdicts: every model without labels of its own joins these
        "labels": {"type": "mqtt", "broker": broker, "topic": QC_TOPIC, "sample_id_field": "serial",
                   "label_field": "result"},
        "outbox": {"flush_interval_s": 0.5},
        "health": {"port": 0},  # any free port: the demo must not collide with a real agent
    }

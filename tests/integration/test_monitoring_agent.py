"""Model health in the running agent: incidents reach MQTT and the outbox with their id, labels
are joined, an operator acknowledges (the persisting drift does not come back as a new alarm)
and shelves (audited), and a restart restores the detectors and the incident."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import main
from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.demo.sim.process import COUNTER_TAG, DriftStep
from agent.store.codec import decode_json
from agent.store.outbox import Outbox
from tests.helpers.running import base_config, collect_json, opcua_source, running_agent, wait_for


async def test_alarm_path_ack_shelve_and_restart(tmp_path: Path, trained: dict[str, Path], broker: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    alarms_seen: list[dict[str, Any]] = []

    mqtt = {"host": "127.0.0.1", "port": broker.port}
    options = SimOptions(opcua_port=port, mqtt_port=broker.port, speed=300, qc_delay_s=60,
                         drift=[DriftStep("resin", 20 * 30.0)])
    async with SimulatedLine(options) as line:
        cfg = base_config(
            tmp_path, [opcua_source(port, line.ns)],
            features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
            model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]},
            outputs={"mqtt": {"broker": mqtt}},
            labels={"type": "mqtt", "broker": mqtt, "topic": "plant/line1/qc"})
        config_file = tmp_path / "agent.yaml"
        config_file.write_text(yaml.safe_dump(cfg))
        listener = asyncio.create_task(collect_json(broker.port, "edge/+/+/alarms", alarms_seen))
        qc = asyncio.create_task(line.run_qc_station())
        async with running_agent(cfg) as agent:
            await wait_for(lambda: agent.sources[0].status.connected, what="connected")
            await line.run_machine(stop_after=150)
            watch = agent.watch
            assert watch is not None
            await wait_for(lambda: watch.incidents.worst() == "alarm", what="an alarm after the resin change")
            await wait_for(lambda: any(a["level"] == "alarm" and a["notify"] for a in alarms_seen),
                           what="alarm on MQTT")
            await wait_for(lambda: agent.labels_received >= 100, what="QC labels")
            await asyncio.sleep(2.5)  # one status write
            incident = watch.incidents.current
            assert incident is not None
            first = next(e for e in agent.events if e.notify and e.level == "alarm")
            assert first.index >= 20 and first.model_version == "1.0.0"
            assert first.incident_id == incident.id
            assert first.start_index is not None and first.start_index >= 15
            on_mqtt = [a for a in alarms_seen if a["notify"]]
            assert {a["incident_id"] for a in on_mqtt} == {incident.id}  # one incident, its id
            assert 1 <= len(on_mqtt) <= 3

            assert main(["alarms", "list", "--config", str(config_file)]) == 0
            listed = capsys.readouterr().out
            assert incident.id in listed and "ALARM" in listed
            assert main(["alarms", "ack", "--config", str(config_file), "--by", "shift-lead"]) == 0
            await wait_for(lambda: incident.acknowledged_by == "shift-lead", 10, "acknowledgement applied")
            notified = sum(e.notify for e in agent.events)
            # the new resin stays: its detectors go on firing, and nothing comes back as new
            await line.run_machine(stop_after=260)
            await wait_for(lambda: watch.monitor.samples >= 259, what="the rest of the parts")
            assert watch.incidents.current is incident and incident.acknowledged_by == "shift-lead"
            assert sum(e.notify for e in agent.events) == notified
            assert main(["alarms", "shelve", incident.id, "--for", "8h", "--by", "night-shift",
                         "--reason", "resin trial", "--config", str(config_file)]) == 0
            await wait_for(lambda: incident.shelved_by == "night-shift", 10, "shelving applied")
            status = json.loads((tmp_path / "status.json").read_text())
            join = status["monitor"]["labels_join"]
            assert join["labelled"] >= 100 and 0 < join["coverage"] <= 1
            assert join["mean_latency_s"] > 0
            assert status["monitor"]["rolling_accuracy"] is not None
            samples_before = watch.monitor.samples
        qc.cancel()
        listener.cancel()

    box = Outbox(tmp_path / "outbox.db", 1 << 30)
    stored = [e for r in box.peek(limit=10_000, max_bytes=1 << 30) if r.kind == "events"
              for e in decode_json(r.payload)]
    assert {e["incident_id"] for e in stored} == {incident.id}
    assert any(e["action"] == "acknowledged" and e["acknowledged_by"] == "shift-lead" for e in stored)
    assert any(e["action"] == "shelved" and e["shelved_by"] == "night-shift"
               and e["shelve_reason"] == "resin trial" for e in stored)
    audit = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    actions = [(a["actor"], a["action"]) for a in audit]
    assert ("shift-lead", "alarm_acknowledged") in actions and ("night-shift", "alarm_shelved") in actions

    # a restart picks the detectors and the incident up where they were
    async with SimulatedLine(SimOptions(opcua_port=port)) as line2:
        cfg["sources"] = [opcua_source(port, line2.ns)]
        async with running_agent(cfg) as again:
            assert again.watch is not None and again.watch.restored
            assert again.watch.monitor.samples == samples_before
            kept = again.watch.incidents.current
            assert kept is not None and kept.id == incident.id and kept.shelved_by == "night-shift"


async def test_labels_from_an_opcua_qc_tag(tmp_path: Path, trained: dict[str, Path]) -> None:
    from agent.demo.sim.line import node_id

    port = free_port()
    options = SimOptions(opcua_port=port, speed=300, qc_delay_s=60)
    async with SimulatedLine(options) as line:
        source = opcua_source(port, line.ns)
        source["nodes"] += [{"tag": t, "node_id": node_id(t, line.ns)} for t in ("qc_result", "qc_serial")]
        cfg = base_config(
            tmp_path, [source], features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
            model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]},
            labels={"type": "opcua", "tag": "qc_result", "sample_id_tag": "qc_serial",
                    "values": {"0": "NOK", "1": "OK"}})
        qc = asyncio.create_task(line.run_qc_over_opcua())
        async with running_agent(cfg) as agent:
            await wait_for(lambda: agent.sources[0].status.connected, what="connected")
            await line.run_machine(stop_after=40)
            await wait_for(lambda: agent.labels_received >= 38, what="verdicts from the PLC tags")
            assert agent.watch is not None
            figures = agent.watch.figures()
            assert figures["labels_join"]["labelled"] >= 38  # joined to their parts by serial
            assert figures["unknown_label_values"] == 0
            assert figures["rolling_accuracy"] >= 0.75  # the verdicts match what the line made
        qc.cancel()

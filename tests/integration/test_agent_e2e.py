"""The whole agent against the simulated line: predictions out over MQTT, labels in, outbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.demo.sim.process import COUNTER_TAG
from agent.inference.batches import decode_predictions
from agent.store.codec import decode_readings
from agent.store.outbox import Outbox
from tests.helpers.running import base_config, collect_json, opcua_source, running_agent, wait_for


def full_config(tmp_path: Path, trained: dict[str, Path], opc_port: int, ns: int,
                out_port: int, label_port: int) -> dict[str, Any]:
    return base_config(
        tmp_path, [opcua_source(opc_port, ns)],
        features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
        model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]},
        outputs={"mqtt": {"broker": {"host": "127.0.0.1", "port": out_port,
                                     "reconnect": {"initial_s": 0.2, "max_s": 0.5}},
                          "topic": "edge/{gateway_id}/{model}/predictions"}},
        labels={"type": "mqtt", "broker": {"host": "127.0.0.1", "port": label_port},
                "topic": "plant/line1/qc"},
    )


async def test_predictions_labels_and_outbox(tmp_path: Path, trained: dict[str, Path], broker: Any,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    opc_port = free_port()
    received: list[dict[str, Any]] = []

    options = SimOptions(opcua_port=opc_port, mqtt_port=broker.port, speed=100, qc_delay_s=10)
    async with SimulatedLine(options) as line:
        listener = asyncio.create_task(collect_json(broker.port, "edge/#", received))
        cfg = full_config(tmp_path, trained, opc_port, line.ns, broker.port, broker.port)
        async with running_agent(cfg) as agent:
            assert agent.model is not None and agent.model.version == "1.0.0"
            qc = asyncio.create_task(line.run_qc_station())
            await wait_for(lambda: agent.labels is not None and agent.labels.status.connected, what="labels")
            await line.run_machine(stop_after=30)
            await wait_for(lambda: len(received) >= 30, what="30 predictions published")
            await wait_for(lambda: agent.labels_received >= 28, what="labels")
            qc.cancel()
        listener.cancel()

    first = received[0]
    assert first["topic"] == "edge/test-gw/moulding-nok/predictions"
    assert first["model"] == "moulding-nok" and first["version"] == "1.0.0"
    assert first["bundle_sha256"] == agent.model.bundle.sha256
    assert len(first["inputs_hash"]) == 16 and first["outputs"]["label"] in ("OK", "NOK")
    assert {p["sample_id"] for p in received} >= {str(i) for i in range(1, 31)}
    correct = sum(line.results[int(p["sample_id"])] == (p["outputs"]["label"] == "OK") for p in received)
    assert correct / len(received) >= 0.75  # the model really predicts the line

    box = Outbox(tmp_path / "outbox.db", 1 << 30)
    kinds: dict[str, int] = {}
    for record in box.peek(limit=10000, max_bytes=1 << 30):
        kinds[record.kind] = kinds.get(record.kind, 0) + record.items
        if record.kind == "readings":
            assert all(r.tag for r in decode_readings(record.payload))
        elif record.kind == "predictions":
            rows = decode_predictions(record.payload)
            assert all(p["sha"] == agent.model.bundle.sha256 and len(p["in"]) == 16 for p in rows)
    assert kinds["predictions"] == agent.predictions >= 30
    assert kinds["labels"] == agent.labels_received
    assert kinds["readings"] >= 30 * 9

    config_file = tmp_path / "agent.yaml"
    config_file.write_text(json.dumps(cfg))  # JSON is YAML
    capsys.readouterr()
    assert main(["status", "--config", str(config_file), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["model"]["version"] == "1.0.0"
    assert status["predictions"] == agent.predictions
    assert status["outbox"]["depth"] > 0 and status["outbox"]["evicted_items"] == 0
    assert status["monitor"]["budget_per_model"] is True
    assert main(["status", "--config", str(config_file)]) == 0
    text = capsys.readouterr().out
    assert "moulding-nok 1.0.0" in text
    assert "model moulding-nok\n" in text  # one block per model
    assert "  budget      1 false alarm(s) and 5 warning(s) per week per model" in text
    assert status["models"]["moulding-nok"]["model"]["version"] == "1.0.0"


async def test_broker_down_never_blocks_inference(tmp_path: Path, trained: dict[str, Path]) -> None:
    opc_port, dead_port = free_port(), free_port()
    async with SimulatedLine(SimOptions(opcua_port=opc_port)) as line:
        cfg = full_config(tmp_path, trained, opc_port, line.ns, dead_port, dead_port)
        async with running_agent(cfg) as agent:
            await wait_for(lambda: agent.sources[0].status.connected, what="opcua connected")
            for _ in range(20):
                await line.make_part()
                await asyncio.sleep(0.02)
            await wait_for(lambda: agent.predictions >= 20, what="inference without a broker")
            assert agent.publisher is not None
            assert agent.publisher.published == 0 and agent.publisher.queued >= 20
            assert not agent.publisher.status.connected
        box = Outbox(tmp_path / "outbox.db", 1 << 30)
        assert sum(r.items for r in box.peek(limit=1000) if r.kind == "predictions") >= 20


async def test_bad_bundle_keeps_agent_running_without_model(tmp_path: Path,
                                                            trained: dict[str, Path]) -> None:
    opc_port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=opc_port)) as line:
        cfg = full_config(tmp_path, trained, opc_port, line.ns, free_port(), free_port())
        cfg["model"]["trusted_keys"] = [str(trained["other_pub"])]
        async with running_agent(cfg) as agent:
            assert agent.model is None and "trusted key" in (agent.model_error or "")
            # a part made before the subscription exists arrives as the initial values only
            await wait_for(lambda: agent.sources[0].status.connected, what="connected")
            await line.make_part()
            await wait_for(lambda: agent.sources[0].status.readings >= 18, what="data still read")


async def test_opcua_writeback_of_label_and_score(tmp_path: Path, trained: dict[str, Path]) -> None:
    opc_port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=opc_port)) as line:
        cfg = full_config(tmp_path, trained, opc_port, line.ns, free_port(), free_port())
        del cfg["outputs"]["mqtt"], cfg["labels"]
        cfg["outputs"]["opcua_writeback"] = {"source": "plc", "nodes": {
            "label": f"ns={line.ns};s=Machine1.Edge.PredictedClass",
            "score": f"ns={line.ns};s=Machine1.Edge.NokScore"}}
        async with running_agent(cfg) as agent:
            await wait_for(lambda: agent.sources[0].status.connected, what="connected")
            await line.make_part()
            await line.make_part()
            assert agent.writeback is not None
            await wait_for(lambda: agent.writeback is not None and agent.writeback.written >= 2,
                           what="write-back")
            predicted = await line.writeback_nodes["Edge.PredictedClass"].read_value()
            score = await line.writeback_nodes["Edge.NokScore"].read_value()
            assert predicted in (0, 1)  # index into ["NOK", "OK"]
            assert 0.0 <= score <= 1.0
            assert agent.writeback.failed == 0


async def test_each_model_writes_its_own_nodes(tmp_path: Path, trained: dict[str, Path]) -> None:
    """Two models, each with models[].outputs.opcua_writeback: each node holds its model's
    answer for the newest part; the first model's label, the second's score."""
    from tests.helpers.multimodel import renamed

    second = renamed(trained["bundle"], "moulding-nok-b", "1.0.0", tmp_path / "b", trained["key"])
    opc_port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=opc_port)) as line:
        cfg = full_config(tmp_path, trained, opc_port, line.ns, free_port(), free_port())
        del cfg["outputs"]["mqtt"], cfg["labels"]
        keys = [str(trained["pub"])]
        node = f"ns={line.ns};s=Machine1.Edge."
        cfg["models"] = [
            {**cfg.pop("model"), "name": "moulding-nok", "outputs": {"opcua_writeback": {
                "source": "plc", "nodes": {"label": node + "PredictedClass"}}}},
            {"name": "moulding-nok-b", "bundle": str(second), "trusted_keys": keys,
             "outputs": {"opcua_writeback": {"source": "plc", "nodes": {"score": node + "NokScore"}}}}]
        async with running_agent(cfg) as agent:
            await wait_for(lambda: agent.sources[0].status.connected, what="connected")
            wbs = agent.writebacks.by_unit
            assert sorted(wbs) == ["moulding-nok", "moulding-nok-b"]
            for n in (1, 2):  # one part at a time: the write-back writes only the newest part
                await line.make_part()
                await wait_for(lambda n=n: all(w.written >= n for w in wbs.values()), what="write-backs")
            assert await line.writeback_nodes["Edge.PredictedClass"].read_value() in (0, 1)
            score = await line.writeback_nodes["Edge.NokScore"].read_value()
            assert 0.0 <= score <= 1.0  # the second model's score, not left at -1
            assert all(w.failed == 0 for w in wbs.values())
            assert "opcua-writeback:moulding-nok-b" in agent.health

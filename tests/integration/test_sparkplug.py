"""Sparkplug B against an edge node simulator (pysparkplug payloads) over a real broker: births,
data by alias, a sequence gap and an unknown alias (rebirth requested and handled), quality and
timestamps, a death (tags stale, samples invalid by reason), malformed protobuf (counted)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiomqtt
from prometheus_client import generate_latest

from agent.ingest.sources.sparkplug import SparkplugSource
from tests.helpers.running import base_config, running_agent, seen_readings, wait_for
from tests.helpers.spb_edge import DEVICE_METRICS, NODE_METRICS, edge_node

TAGS = dict(zip(["barrel_temp_1", "barrel_temp_2", "barrel_temp_3", "injection_pressure"],
                NODE_METRICS, strict=True))
DEVICE_TAGS = dict(zip(["mould_temp", "screw_speed", "cycle_time", "cushion"], DEVICE_METRICS,
                       strict=True))


def sparkplug_config(tmp_path: Path, port: int, trained: dict[str, Path]) -> dict[str, Any]:
    metrics = [{"tag": t, "edge_node": "plc-4", "metric": m} for t, m in TAGS.items()]
    metrics += [{"tag": t, "edge_node": "plc-4", "device": "press-1", "metric": m}
                for t, m in DEVICE_TAGS.items()]
    src = {"type": "sparkplug", "name": "spb", "group": "cell-4", "edge_nodes": ["plc-4"],
           "broker": {"host": "127.0.0.1", "port": port,
                      "reconnect": {"initial_s": 0.2, "max_s": 0.5}},
           "rebirth_interval_s": 0.2, "metrics": metrics, "host_id": "edge-ml"}
    return base_config(tmp_path, [src], features={"mode": "periodic", "period_s": 0.1,
                                                  "max_age_s": 30},
                       model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]},
                       outbox={"flush_interval_s": 60})


def values_of(agent: Any, tag: str) -> list[tuple[float, str, float]]:
    return [(r.value, r.quality, r.source_ts) for r in seen_readings(agent) if r.tag == tag]


async def test_sparkplug_edge_node_lifecycle(tmp_path: Path, broker: Any,
                                             trained: dict[str, Path]) -> None:
    cfg = sparkplug_config(tmp_path, broker.port, trained)
    async with running_agent(cfg) as agent:
        source = agent.sources[0]
        assert isinstance(source, SparkplugSource)
        await wait_for(lambda: source.status.connected, 15, "subscribed")
        async with aiomqtt.Client("127.0.0.1", broker.port) as probe:  # a node waiting for its host
            await probe.subscribe("spBv1.0/STATE/edge-ml", qos=1)
            async with asyncio.timeout(10):
                message = await anext(aiter(probe.messages))
                assert isinstance(message.payload, bytes)
                state = json.loads(message.payload)
            assert state["online"] is True and state["timestamp"] > 0
        async with edge_node(broker.port) as edge:
            # data before any birth (the agent started after the node): a rebirth is requested
            await edge.data({"Barrel/Zone1": 221.0})
            await wait_for(lambda: edge.rebirth_requests == 1, 10, "rebirth for data before birth")
            await wait_for(lambda: source.nodes["plc-4"].born, 10, "NBIRTH handled")
            await wait_for(lambda: agent.builder is not None and agent.builder.samples > 0, 10,
                           "valid samples from the birth values")

            # data by alias, with its own timestamp (ms) honoured
            stamp = int(time.time() * 1000) - 1500
            await edge.data({"Barrel/Zone2": 231.5}, ts=stamp)
            await edge.data({"Mould/Temp": 46.25}, device=True, ts=stamp)
            await wait_for(lambda: (231.5, "good", stamp / 1000) in values_of(agent, "barrel_temp_2")
                           and any(v == 46.25 for v, _, _ in values_of(agent, "mould_temp")), 10,
                           "NDATA and DDATA decoded by alias")

            # quality property and an explicit null
            await edge.data({"Barrel/Zone3": 1.0, "Injection/Pressure": 2.0},
                            quality={"Barrel/Zone3": 500, "Injection/Pressure": 0})
            await wait_for(lambda: any(q == "stale" for _, q, _ in values_of(agent, "barrel_temp_3")),
                           10, "Quality 500 -> stale")
            pressure = values_of(agent, "injection_pressure")
            assert pressure[-1][1] == "bad" and pressure[-1][0] != pressure[-1][0]  # NaN, not 2.0

            # a sequence gap: counted, rebirth requested, the node's birth restores the state
            edge.next_seq()  # one number skipped
            await edge.data({"Barrel/Zone1": 222.0})
            await wait_for(lambda: source.sequence_gaps == 1 and edge.rebirth_requests == 2, 10,
                           "gap -> rebirth")
            await asyncio.sleep(0.3)  # past rebirth_interval_s

            # an alias no birth declared
            await edge.data({"Barrel/Zone1": 223.0}, alias_override=99)
            await wait_for(lambda: source.unknown_aliases == 1 and edge.rebirth_requests == 3, 10,
                           "unknown alias -> rebirth")
            gaps_before = source.sequence_gaps
            # what the source refused or asked for is in status.json and /metrics
            counters = next(s["counters"] for s in agent.snapshot()["sources"] if s["name"] == "spb")
            assert counters["unknown_aliases"] == 1 and counters["sequence_gaps"] == 1
            assert {"alias_collisions", "not_numeric", "refused_nodes",
                    "rebirths_suppressed"} <= set(counters)
            assert agent.health_server is not None
            metrics = generate_latest(agent.health_server.registry).decode()
            assert 'edge_sparkplug_unknown_aliases_total{source="spb"} 1.0' in metrics
            assert 'edge_sparkplug_alias_collisions_total{source="spb"} 0.0' in metrics

            # malformed protobuf: counted, the source keeps going
            await edge.publish(edge.topic("NDATA"), b"\xff\xfe not protobuf \x00\x01")
            await wait_for(lambda: source.status.malformed == 1, 10, "malformed counted")
            await edge.data({"Barrel/Zone1": 224.0})
            await wait_for(lambda: any(v == 224.0 for v, _, _ in values_of(agent, "barrel_temp_1")),
                           10, "data after the malformed payload")
            assert source.status.connected and agent.health["source:spb"].restarts == 0
            assert source.sequence_gaps == gaps_before  # the bad payload did not break the sequence

            # a death with an old bdSeq is a stale will: ignored; the real one makes tags stale
            await edge.death(bd_seq=edge.bd_seq + 7)
            await edge.data({"Barrel/Zone1": 225.0})
            await wait_for(lambda: any(v == 225.0 for v, _, _ in values_of(agent, "barrel_temp_1")),
                           10, "still alive after a stale will")
            assert source.deaths == 0
            assert agent.builder is not None
            invalid_before = sum(v for k, v in agent.builder.invalid.items() if k.startswith("stale:"))
            await edge.death()
            await wait_for(lambda: source.deaths == 1, 10, "NDEATH")
            await wait_for(lambda: sum(v for k, v in agent.builder.invalid.items()
                                       if k.startswith("stale:")) > invalid_before + 3, 10,
                           "samples invalid as stale after the death")
            samples = agent.builder.samples
            await asyncio.sleep(0.5)
            assert agent.builder.samples == samples  # nothing valid while the node is dead
            assert "stale:barrel_temp_1" in agent.builder.invalid


async def test_agent_publishes_predictions_as_a_sparkplug_edge_node(
        tmp_path: Path, broker: Any, trained: dict[str, Path]) -> None:
    import aiomqtt
    import pysparkplug as spb

    cfg = sparkplug_config(tmp_path, broker.port, trained)
    cfg["outputs"] = {"sparkplug": {"broker": {"host": "127.0.0.1", "port": broker.port},
                                    "group": "agents"}}
    seen: list[tuple[str, Any]] = []

    async def host(client: aiomqtt.Client) -> None:  # a SCADA host reading our edge node
        async for msg in client.messages:
            assert isinstance(msg.payload, bytes)
            kind = str(msg.topic).split("/")[2]
            if kind == "NCMD":
                continue  # our own command
            cls = {"NBIRTH": spb.NBirth, "NDATA": spb.NData, "NDEATH": spb.NDeath}[kind]
            seen.append((kind, cls.decode(msg.payload)))

    async with aiomqtt.Client("127.0.0.1", broker.port) as scada:
        await scada.subscribe("spBv1.0/agents/+/test-gw", qos=1)
        reader = asyncio.create_task(host(scada))
        async with running_agent(cfg) as agent, edge_node(broker.port) as edge:
            await edge.birth()
            await wait_for(lambda: any(k == "NDATA" for k, _ in seen), 15, "NDATA with predictions")
            births = [p for k, p in seen if k == "NBIRTH"]
            names = {m.name for p in births for m in p.metrics}
            assert {"bdSeq", "Node Control/Rebirth", "moulding-nok/Score",
                    "moulding-nok/Version", "moulding-nok/Health"} <= names
            data = next(p for k, p in seen if k == "NDATA")
            version = next(m.value for m in data.metrics if m.name == "moulding-nok/Version")
            assert version == "1.0.0" and data.seq == births[-1].seq + 1
            count = len(births)
            rebirth = spb.Metric(timestamp=spb.get_current_timestamp(), name="Node Control/Rebirth",
                                 datatype=spb.DataType.BOOLEAN, value=True)
            await scada.publish("spBv1.0/agents/NCMD/test-gw",
                                spb.NCmd(spb.get_current_timestamp(), (rebirth,)).encode(
                                    include_dtypes=True), qos=1)
            await wait_for(lambda: len([1 for k, _ in seen if k == "NBIRTH"]) > count, 10,
                           "a new NBIRTH on request")
            assert agent.sparkplug_out.status.connected
        reader.cancel()

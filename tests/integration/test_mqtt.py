"""MQTT against a real broker process: JSON and plain payloads, wildcards, restarts, garbage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt

from agent.ingest.sources.mqtt import MqttSource
from tests.helpers.running import base_config, running_agent, seen_readings, wait_for


def mqtt_source(port: int) -> dict[str, Any]:
    return {
        "type": "mqtt", "name": "sensors", "qos": 1,
        "broker": {"host": "127.0.0.1", "port": port, "reconnect": {"initial_s": 0.2, "max_s": 1.0}},
        "topics": [
            {"topic": "plant/+/telemetry",
             "tags": [{"tag": "{1}.temp", "field": "data.temp", "timestamp_field": "ts"}]},
            {"topic": "plant/ambient", "tags": [{"tag": "ambient"}]},
        ],
    }


def sensors(agent: Any) -> MqttSource:
    source = agent.sources[0]
    assert isinstance(source, MqttSource)
    return source


async def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def test_json_fields_wildcards_and_plain_numbers(tmp_path: Path, broker: Any) -> None:
    async with running_agent(base_config(tmp_path, [mqtt_source(broker.port)])) as agent:
        await wait_for(lambda: sensors(agent).status.connected, what="connected")
        await publish(broker.port, [
            ("plant/vib-7/telemetry", json.dumps({"ts": 1700000000123, "data": {"temp": 41.5}}).encode()),
            ("plant/ambient", b"21.25"),
        ])
        await wait_for(lambda: sensors(agent).status.readings == 2, what="two readings")
        readings = {r.tag: r for r in seen_readings(agent)}
        assert readings["vib-7.temp"].value == 41.5
        assert readings["vib-7.temp"].source_ts == 1700000000.123
        assert readings["ambient"].value == 21.25


async def test_malformed_payloads_are_counted_never_fatal(tmp_path: Path, broker: Any) -> None:
    async with running_agent(base_config(tmp_path, [mqtt_source(broker.port)])) as agent:
        await wait_for(lambda: sensors(agent).status.connected, what="connected")
        garbage = [b"{not json", b'{"data": {}}', b'{"data": {"temp": "hot"}}', b"\xff\xfe\x00",
                   b'{"data": {"temp": 1}, "ts": "yesterday"}', b"[]", b"", b'{"data": [1]}',
                   b'{"data": {"temp": NaN}}', b'{"data": {"temp": null}}']
        messages = [("plant/m1/telemetry", garbage[i % len(garbage)]) for i in range(1000)]
        messages.append(("plant/m1/telemetry", b'{"data": {"temp": 5}, "ts": 1700000000}'))
        await publish(broker.port, messages)
        await wait_for(lambda: sensors(agent).status.malformed + sensors(agent).status.readings >= 1001,
                       what="all messages handled")
        assert sensors(agent).status.malformed == 1000
        assert sensors(agent).status.readings == 1
        assert sensors(agent).malformed.by_key == {"plant/m1/telemetry": 1000}
        assert agent.health["source:sensors"].restarts == 0


async def test_broker_restart_reconnects_and_resubscribes(tmp_path: Path, private_broker: Any) -> None:
    port = private_broker.port
    async with running_agent(base_config(tmp_path, [mqtt_source(port)])) as agent:
        source = sensors(agent)
        await wait_for(lambda: source.status.connected, what="connected")
        await publish(port, [("plant/ambient", b"1")])
        await wait_for(lambda: source.status.readings == 1, what="first reading")
        private_broker.stop()
        await wait_for(lambda: not source.status.connected, 15, "agent notices the broker is gone")
        await asyncio.sleep(0.5)
        private_broker.start()  # a fresh broker without our session: we must subscribe again
        await wait_for(lambda: source.status.connected, 20, "reconnect")
        await publish(port, [("plant/ambient", b"2"), ("plant/x/telemetry", b'{"data":{"temp":3},"ts":1}')])
        await wait_for(lambda: source.status.readings == 3, 10, "data after restart")
        assert source.status.reconnects >= 1


async def test_publisher_stops_when_a_publish_swallows_its_cancellation(broker: Any,
                                                                         monkeypatch: Any) -> None:
    """asyncio.wait_for on Python 3.11 can return instead of raising when a cancellation and the
    broker's acknowledgement arrive together (aiomqtt waits for PUBACK in it). Here every
    publish swallows it that way: the publisher must still stop, not wait for its next
    prediction forever (it did in a CI run: the agent's stop hung)."""
    from agent.config import MqttBroker, MqttOutputConfig
    from agent.outputs.publish import MqttPublisher
    from tests.unit.test_batches import batch

    real_publish = aiomqtt.Client.publish
    in_flight = asyncio.Event()

    async def swallowing_publish(self: aiomqtt.Client, *args: Any, **kwargs: Any) -> None:
        try:
            in_flight.set()
            await asyncio.sleep(0.05)
            await real_publish(self, *args, **kwargs)
        except asyncio.CancelledError:
            pass  # what wait_for does when the result was already there

    monkeypatch.setattr(aiomqtt.Client, "publish", swallowing_publish)
    publisher = MqttPublisher(MqttOutputConfig(broker=MqttBroker(host="127.0.0.1", port=broker.port),
                                               qos=1), "gw-cancel")
    publisher.offer(batch(3))
    task = asyncio.create_task(publisher.run())
    await asyncio.wait_for(in_flight.wait(), 10)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done == {task} and task.cancelled()
    assert publisher.published < 3  # stopped in the middle, as asked

"""Where predictions go: MQTT (never blocking inference) and optional OPC UA write-back."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any, Protocol

import aiomqtt

from agent.aio.links import RateLimitedLog, SourceStatus
from agent.aio.supervisor import raise_if_cancelling
from agent.config import MqttOutputConfig, OpcUaWritebackConfig
from agent.errors import SourceError
from agent.inference.batches import PredictionBatch
from agent.ingest.mqtt_session import publish, run_session, until_disconnected
from agent.types import Prediction

log = logging.getLogger(__name__)


def prediction_json(p: Prediction) -> bytes:
    return json.dumps({
        "sample_id": p.sample_id, "model": p.model_name, "version": p.model_version,
        "bundle_sha256": p.bundle_sha256, "inputs_hash": p.inputs_hash, "outputs": p.outputs,
        "sample_ts": p.sample_ts, "predicted_ts": p.predicted_ts,
    }, separators=(",", ":")).encode()


class MqttPublisher:
    """A bounded queue in front of a reconnecting client.

    ``offer`` never waits and costs O(1) per batch: messages are formatted by the sending task.
    While the broker is down the queue fills; when it is full the oldest messages are dropped
    and counted (the outbox still holds every prediction).
    """

    def __init__(self, config: MqttOutputConfig, gateway_id: str) -> None:
        self.config = config
        self.gateway_id = gateway_id
        self.status = SourceStatus("predictions-out", "mqtt-out", role="output")
        self._drops = RateLimitedLog("mqtt-out: predictions dropped", min_interval_s=5.0)
        self._queue: deque[list[Any]] = deque()  # [topic, batch, next row to send, rows]
        self._queued = 0
        self._topics: dict[tuple[str, str, str], str] = {}
        self._urgent: deque[tuple[str, bytes]] = deque(maxlen=1000)
        self._wake = asyncio.Event()
        self.published = 0
        self.published_raw = 0
        self.dropped = 0

    def topic_for(self, batch: PredictionBatch, template: str | None = None) -> str:
        """``template``: a model's own topic (models[].outputs.topic), else outputs.mqtt.topic."""
        template = template or self.config.topic
        key = (template, batch.model_name, batch.model_version)
        topic = self._topics.get(key)
        if topic is None:
            if len(self._topics) > 1024:  # versions come and go: never an unbounded cache
                self._topics.clear()
            topic = self._topics[key] = template.format(
                gateway_id=self.gateway_id, model=batch.model_name, version=batch.model_version)
        return topic

    def offer(self, batch: PredictionBatch, template: str | None = None) -> None:
        if not len(batch):
            return
        n = len(batch)
        self._queue.append([self.topic_for(batch, template), batch, 0, n])
        self._queued += n
        if self._queued > self.config.queue_size:
            self._drop_oldest()
        self._wake.set()

    def _drop_oldest(self) -> None:
        while self._queued > self.config.queue_size:
            entry = self._queue[0]
            excess = min(self._queued - self.config.queue_size, entry[3] - entry[2])
            entry[2] += excess
            self._queued -= excess
            self.dropped += excess
            self.status.dropped += excess
            self._drops.report("predictions-out", lambda: (
                f"mqtt-out: prediction(s) dropped, the output queue "
                f"(outputs.mqtt.queue_size {self.config.queue_size}) is full while the broker "
                f"is {'away' if not self.status.connected else 'slow'}; the outbox keeps "
                "every prediction for the hub"), n=excess)
            if entry[2] >= entry[3]:
                self._queue.popleft()

    def offer_raw(self, topic: str, payload: bytes) -> None:
        """One message that is not a prediction (an alarm event): it jumps the queue."""
        self._urgent.append((topic, payload))
        self._wake.set()

    @property
    def queued(self) -> int:
        return self._queued

    async def run(self) -> None:
        await run_session(self.config.broker, f"edge-{self.gateway_id}-out", self.status, [],
                          on_connected=self._drain)

    async def _drain(self, client: aiomqtt.Client) -> None:
        watcher = asyncio.ensure_future(until_disconnected(client))
        try:
            await self._send(client, watcher)
        finally:
            watcher.cancel()

    async def _send(self, client: aiomqtt.Client, watcher: asyncio.Future[None]) -> None:
        while True:
            while self._urgent:
                topic, payload = self._urgent[0]
                await publish(client, topic, payload, qos=1)
                self._urgent.popleft()
                self.published_raw += 1
            while self._queue:
                entry = self._queue[0]
                topic, batch, row, rows = entry
                if row >= rows:
                    self._queue.popleft()
                    continue
                payload = prediction_json(batch.prediction(row))
                await publish(client, topic, payload, qos=self.config.qos)
                if self._queue and self._queue[0] is entry:  # not dropped meanwhile
                    entry[2] += 1  # only after the broker took it
                    self._queued -= 1
                self.published += 1
            self._wake.clear()
            wake: asyncio.Future[Any] = asyncio.ensure_future(self._wake.wait())
            done, _ = await asyncio.wait([wake, watcher], return_when=asyncio.FIRST_COMPLETED)
            if watcher in done:
                wake.cancel()
                watcher.result()  # the broker went away: MqttError, and run_session reconnects


class NodeWriter(Protocol):
    async def write(self, node_id: str, value: float) -> None: ...


class OpcUaWriteback:
    """Writes chosen outputs of the newest prediction back to PLC nodes."""

    def __init__(self, config: OpcUaWritebackConfig, writer: NodeWriter, classes: list[str]) -> None:
        self.config = config
        self.classes = classes
        self._writer = writer
        self._latest: Prediction | None = None
        self._wake = asyncio.Event()
        self.written = 0
        self.failed = 0

    def offer(self, batch: PredictionBatch) -> None:
        if len(batch):
            self._latest = batch.prediction(len(batch) - 1)  # the PLC wants the current part
            self._wake.set()

    async def run(self) -> None:
        write = self._writer.write
        while True:
            await self._wake.wait()
            self._wake.clear()
            p = self._latest
            if p is None:
                continue
            for output, node_id in self.config.nodes.items():
                value = p.outputs.get(output)
                if isinstance(value, str):  # a class label goes to the PLC as its class index
                    value = self.classes.index(value) if value in self.classes else None
                if value is None:
                    continue
                try:
                    await write(node_id, float(value))
                    self.written += 1
                except SourceError as exc:
                    self.failed += 1
                    log.warning("write-back skipped: %s", exc)
                raise_if_cancelling()  # asyncua's write answers through wait_for (see publish)

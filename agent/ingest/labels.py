"""Ground-truth labels from a QC station over MQTT, keyed by sample id (part serial)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from agent.aio.links import RateLimitedLog, SourceStatus
from agent.config import MqttLabelsConfig
from agent.ingest.features import format_id
from agent.ingest.mqtt_session import run_session
from agent.ingest.sources.mqtt import field_at
from agent.types import Label


class LabelListener:
    def __init__(self, config: MqttLabelsConfig, gateway_id: str,
                 deliver: Callable[[Label], None]) -> None:
        self.config = config
        self.status = SourceStatus("labels", "mqtt-labels", role="labels")
        self._deliver = deliver
        self._identifier = f"edge-{gateway_id}-labels"
        self.malformed = RateLimitedLog()
        self.received = 0

    async def run(self) -> None:
        await run_session(self.config.broker, self._identifier, self.status,
                          [(self.config.topic, 1)], on_message=self.on_message)

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
            raw_id = field_at(doc, self.config.sample_id_field)
            value = field_at(doc, self.config.label_field)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self.status.malformed += 1
            self.malformed.report(topic, f"labels: malformed message on {topic}: {exc}")
            return
        sample_id = format_id(raw_id) if isinstance(raw_id, int | float) else str(raw_id)
        self.received += 1
        self.status.readings += 1
        self._deliver(Label(sample_id, value, time.time()))

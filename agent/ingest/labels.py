"""Ground-truth labels from a QC station over MQTT, keyed by sample id (part serial)."""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.aio.links import RateLimitedLog, SourceStatus
from agent.config import MqttLabelsConfig
from agent.config.limits import DEFAULT_LIMITS, InputLimits, loads_json
from agent.ingest.features import format_id
from agent.ingest.mqtt_session import run_session
from agent.ingest.sources.mqtt import field_at
from agent.types import Label


class LabelListener:
    def __init__(self, config: MqttLabelsConfig, gateway_id: str,
                 deliver: Callable[[Label], None], limits: InputLimits = DEFAULT_LIMITS) -> None:
        self.config = config
        self.status = SourceStatus("labels", "mqtt-labels", role="labels")
        self._deliver = deliver
        self._identifier = f"edge-{gateway_id}-labels"
        self.limits = limits
        self.malformed = RateLimitedLog("labels: malformed message")
        self.received = 0

    async def run(self) -> None:
        await run_session(self.config.broker, self._identifier, self.status,
                          [(self.config.topic, 1)], on_message=self.on_message)

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            doc = loads_json(payload, self.limits.json_max_depth, self.limits.payload_max_bytes)
            raw_id = field_at(doc, self.config.sample_id_field)
            value = field_at(doc, self.config.label_field)
            if isinstance(value, dict | list) or (isinstance(value, str) and len(value) > 256):
                raise ValueError("a label is a class name or a number, not a structure")
            if isinstance(raw_id, dict | list) or (isinstance(raw_id, str) and len(raw_id) > 256):
                raise ValueError("a sample id is a serial, at most 256 characters")
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            self.status.malformed += 1
            self.malformed.report(topic[:200], f"labels: malformed message on {topic[:200]}: "
                                               f"{str(exc)[:120]}")
            return
        sample_id = format_id(raw_id) if isinstance(raw_id, int | float) else str(raw_id)
        self.received += 1
        self.status.readings += 1
        self._deliver(Label(sample_id, value, time.time()))

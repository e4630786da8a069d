"""MQTT source (aiomqtt): topic filters with wildcards, JSON field paths or plain numbers.

A malformed payload is counted and logged once per topic per minute; it never stops the source.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from agent.config import MqttSourceConfig, MqttTag
from agent.ingest.mqtt_session import run_session
from agent.ingest.sources.base import RateLimitedLog, ReadingSink, SourceStatus
from agent.types import Reading


def match_topic(pattern: list[str], topic: list[str]) -> list[str] | None:
    """Match topic levels against a filter; return the levels the wildcards took, or None."""
    captured: list[str] = []
    for i, level in enumerate(pattern):
        if level == "#":
            captured.append("/".join(topic[i:]))
            return captured
        if i >= len(topic):
            return None
        if level == "+":
            captured.append(topic[i])
        elif level != topic[i]:
            return None
    return captured if len(pattern) == len(topic) else None


def field_at(doc: Any, path: str) -> Any:
    """Follow a dotted path ('data.temp', 'values.0') through dicts and lists."""
    for key in path.split("."):
        if isinstance(doc, dict):
            doc = doc[key]
        elif isinstance(doc, list):
            doc = doc[int(key)]
        else:
            raise KeyError(key)
    return doc


def parse_timestamp(value: Any) -> float:
    """Epoch seconds or milliseconds (told apart by size), or ISO 8601 text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        return stamp.timestamp()
    raise ValueError(f"unsupported timestamp {value!r}")


def fill_levels(template: str, captured: list[str]) -> str:
    """Replace {1}, {2}... with the topic levels the wildcards matched."""
    for i, level in enumerate(captured, start=1):
        template = template.replace(f"{{{i}}}", level)
    return template


def to_number(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        number = float(value.strip())
    else:
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("value is not finite")
    return number


class MqttSource:
    def __init__(self, config: MqttSourceConfig, sink: ReadingSink, client_prefix: str) -> None:
        self.config = config
        self.sink = sink
        self.status = SourceStatus(config.name, "mqtt")
        self.malformed = RateLimitedLog()
        self._identifier = f"edge-{client_prefix}-{config.name}"
        self._filters = [(t.topic.split("/"), t.tags) for t in config.topics]

    async def run(self) -> None:
        await run_session(self.config.broker, self._identifier, self.status,
                          [(t.topic, self.config.qos) for t in self.config.topics],
                          on_message=self.on_message)

    def on_message(self, topic: str, payload: bytes) -> None:
        now = time.time()
        levels = topic.split("/")
        for pattern, tags in self._filters:
            captured = match_topic(pattern, levels)
            if captured is not None:
                self._extract(topic, payload, tags, captured, now)

    def _extract(self, topic: str, payload: bytes, tags: list[MqttTag], captured: list[str],
                 now: float) -> None:
        doc: Any = None
        try:
            text = payload.decode("utf-8")
            if any(t.field or t.timestamp_field for t in tags):
                doc = json.loads(text)
            for spec in tags:
                raw = field_at(doc, spec.field) if spec.field else (doc if doc is not None else text)
                value = to_number(raw)
                ts = parse_timestamp(field_at(doc, spec.timestamp_field)) if (
                    spec.timestamp_field) else now
                name = fill_levels(spec.tag, captured)
                self.status.readings += 1
                self.sink.offer(Reading(self.config.name, name, value, ts, now))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, ValueError,
                TypeError, OverflowError) as exc:
            self.status.malformed += 1
            self.malformed.report(topic, f"mqtt {self.config.name}: malformed payload on {topic}: "
                                         f"{type(exc).__name__}: {str(exc)[:80]}")

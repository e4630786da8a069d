"""MQTT source (aiomqtt): topic filters with wildcards, JSON field paths or plain numbers.

A malformed payload (not UTF-8, not JSON, nested deeper than limits.json_max_depth, larger than
limits.payload_max_bytes, a field missing, a value that is not a plain number) is counted and
logged through the log limiter; it never stops the source. Non-finite and implausible values
are readings of bad quality, judged at the intake (agent.ingest.quality).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from typing import Any

from agent.config import MqttSourceConfig, MqttTag
from agent.config.limits import DEFAULT_LIMITS, InputLimitError, InputLimits, loads_json
from agent.ingest.mqtt_session import run_session
from agent.ingest.quality import parse_decimal
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
    """Epoch seconds or milliseconds (told apart by size), or ISO 8601 text. A non-finite number
    is returned as it is: the intake marks the reading bad (ts_not_finite), never a guess."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number / 1000.0 if number > 1e11 else number
    if isinstance(value, str):
        if len(value) > 64 or not value.isascii():
            raise ValueError(f"timestamp {value[:40]!r} is not ISO 8601")
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
    """A JSON number, boolean or plain decimal text as float. NaN and infinities pass (the
    intake marks them bad and counts them); an integer beyond float range is +-inf."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return parse_decimal(value)
    raise ValueError(f"expected a number, got {type(value).__name__}")


class MqttSource:
    def __init__(self, config: MqttSourceConfig, sink: ReadingSink, client_prefix: str,
                 limits: InputLimits = DEFAULT_LIMITS) -> None:
        self.config = config
        self.sink = sink
        self.limits = limits
        self.status = SourceStatus(config.name, "mqtt")
        self.malformed = RateLimitedLog(f"mqtt {config.name}: malformed payload")
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
            if len(payload) > self.limits.payload_max_bytes:
                raise InputLimitError(f"{len(payload)} bytes, more than limits.payload_max_bytes "
                                      f"({self.limits.payload_max_bytes})")
            text = payload.decode("utf-8")
            if any(t.field or t.timestamp_field for t in tags):
                doc = loads_json(payload, self.limits.json_max_depth, self.limits.payload_max_bytes)
            for spec in tags:
                raw = field_at(doc, spec.field) if spec.field else (doc if doc is not None else text)
                value = to_number(raw)
                ts = parse_timestamp(field_at(doc, spec.timestamp_field)) if (
                    spec.timestamp_field) else now
                name = fill_levels(spec.tag, captured)
                self.status.readings += 1
                self.sink.offer(Reading(self.config.name, name, value, ts, now))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, ValueError,
                TypeError, OverflowError, RecursionError) as exc:
            self.status.malformed += 1
            self.malformed.report(topic[:200], f"mqtt {self.config.name}: malformed payload on "
                                               f"{topic[:200]}: {type(exc).__name__}: {str(exc)[:80]}")

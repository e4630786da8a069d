"""Ground-truth labels from a QC station over MQTT, keyed by sample id (part serial).

A label is a sample id and a value, each checked before it is delivered: the id is text (at
most 256 printable characters, so no line of the log or the outbox can be forged with it) or a
whole number that fits 64 bits (a finite, exactly representable float is read as one, as the
features format a numeric serial tag); the value is a class name of at most 256 printable
characters, a Boolean, or a finite number (NaN or "inf" as a label would poison every figure
computed from it). Anything else is counted as malformed and logged through the log limiter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from agent.aio.links import RateLimitedLog, SourceStatus
from agent.config import MqttLabelsConfig
from agent.config.limits import DEFAULT_LIMITS, InputLimits, loads_json
from agent.ingest.features import format_id
from agent.ingest.mqtt_session import run_session
from agent.ingest.sources.mqtt import field_at
from agent.types import Label


class LabelListener:
    def __init__(self, config: MqttLabelsConfig, gateway_id: str,
                 deliver: Callable[[Label], None], limits: InputLimits = DEFAULT_LIMITS,
                 name: str = "labels") -> None:
        """``name``: 'labels', or 'labels-MODEL' for a model's own label source (its link
        name and MQTT client id)."""
        self.config = config
        self.status = SourceStatus(name, "mqtt-labels", role="labels")
        self._deliver = deliver
        self._identifier = f"edge-{gateway_id}-{name}"
        self.limits = limits
        self.malformed = RateLimitedLog("labels: malformed message")
        self.received = 0

    async def run(self) -> None:
        await run_session(self.config.broker, self._identifier, self.status,
                          [(self.config.topic, 1)], on_message=self.on_message)

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            doc = loads_json(payload, self.limits.json_max_depth, self.limits.payload_max_bytes)
            sample_id = sample_id_of(field_at(doc, self.config.sample_id_field))
            value = label_value(field_at(doc, self.config.label_field))
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            self.status.malformed += 1
            shown = _printable(topic[:200])
            self.malformed.report(shown, f"labels: malformed message on {shown}: "
                                         f"{_printable(str(exc)[:120])}")
            return
        self.received += 1
        self.status.readings += 1
        self._deliver(Label(sample_id, value, time.time()))


MAX_TEXT = 256
_WHOLE = 2**63  # a serial beyond 64 bits is not one (and no float holds it exactly)


def _text(value: str, what: str) -> str:
    if not 0 < len(value) <= MAX_TEXT or not value.isprintable():
        raise ValueError(f"a {what} is 1 to {MAX_TEXT} printable characters, not "
                         f"{_printable(value[:40])!r} ({len(value)} characters)")
    return value


def sample_id_of(raw: Any) -> str:
    """The sample id of a label as the features spell it; ValueError if it is none."""
    if isinstance(raw, str):
        return _text(raw, "sample id")
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) < _WHOLE:
        return str(raw)
    if isinstance(raw, float) and math.isfinite(raw) and abs(raw) < 2**53:
        return format_id(raw)
    raise ValueError(f"a sample id is a serial (text, or a whole number within 64 bits), not "
                     f"{_printable(repr(raw)[:40])}")


def label_value(value: Any) -> Any:
    """The label value if it can be one; ValueError if not."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond any float
            finite = False
        if not finite:
            raise ValueError(f"a label is a class or a finite number, not {repr(value)[:40]}")
        return value
    if isinstance(value, str):
        text = _text(value, "label")
        try:
            number = float(text)
        except ValueError:
            return text
        if not math.isfinite(number):
            raise ValueError(f"a label is a class or a finite number, not {text!r}")
        return text
    raise ValueError(f"a label is a class name or a number, not {type(value).__name__}")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)

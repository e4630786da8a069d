"""Hostile MQTT payloads and readings: every one is a counted refusal (malformed at the source)
or a reading of bad quality counted by reason at the intake; the good readings around them
arrive as good, and the source is never restarted."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ingest.quality import ReadingCheck, parse_decimal
from agent.ingest.sources.mqtt import MqttSource
from agent.service.agent import Agent
from agent.types import Quality, Reading
from tests.helpers.running import base_config, running_agent, seen_readings, wait_for
from tests.integration.test_mqtt import publish

DAY = 86400.0


def _agent(tmp_path: Path, port: int = 1) -> Agent:
    source = {"type": "mqtt", "name": "s", "broker": {"host": "127.0.0.1", "port": port,
                                                        "reconnect": {"initial_s": 0.2, "max_s": 1}},
              "topics": [{"topic": "j/+", "tags": [{"tag": "{1}", "field": "v", "timestamp_field": "ts"}]},
                         {"topic": "p/+", "tags": [{"tag": "{1}"}]}]}
    return Agent.from_raw(base_config(tmp_path, [source]))


def _ts(offset: float = 0.0) -> float:
    return time.time() + offset


# payload -> what must happen: "malformed" (refused at the source) or a bad-quality reason
HOSTILE: list[tuple[str, bytes, str]] = [
    ("j/deep", b'{"v": 1, "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "malformed"),
    ("j/deep-objects", b'{"v": 1, "x": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}", "malformed"),
    ("j/huge", b'{"v": 1, "pad": "' + b"x" * (2 << 20) + b'"}', "malformed"),
    ("j/bigint", b'{"v": 1' + b"0" * 5000 + b', "ts": 1}', "malformed"),
    ("j/surrogate", b'{"v": "\\ud800", "ts": 1}', "malformed"),
    ("j/not-utf8", b'{"v": "\xff", "ts": 1}', "malformed"),
    ("j/null", b"null", "malformed"),
    ("j/42", b"42", "malformed"),
    ("j/structure", b'{"v": {"a": 1}, "ts": %d}' % int(_ts()), "malformed"),
    ("j/iso-garbage", b'{"v": 1, "ts": "2026-13-45T99:00"}', "malformed"),
    ("p/arabic", "١٢٣".encode(), "malformed"),
    ("p/fullwidth", "\uff11\uff12\uff13".encode(), "malformed"),
    ("p/underscore", b"1_000", "malformed"),
    ("p/hex", b"0x10", "malformed"),
    ("p/empty", b"", "malformed"),
    ("p/nan-text", b"nan", "not_finite"),
    ("p/inf-text", b"-Infinity", "not_finite"),
    ("p/1e300", b"1e300", "out_of_range"),
    ("p/minus-1e300", b"-1e300", "out_of_range"),
    ("p/1e400", b"1e400", "not_finite"),
    ("j/nan", b'{"v": NaN, "ts": %.3f}' % _ts(), "not_finite"),
    ("j/inf", b'{"v": Infinity, "ts": %.3f}' % _ts(), "not_finite"),
    ("j/bigint-value", b'{"v": %d, "ts": %.3f}' % (10**400, _ts()), "not_finite"),
    ("j/ts-nan", b'{"v": 1, "ts": NaN}', "ts_not_finite"),
    ("j/ts-inf", b'{"v": 1, "ts": Infinity}', "ts_not_finite"),
    ("j/ts-1e300", b'{"v": 1, "ts": 1e300}', "ts_future"),
    ("j/ts-30-days-back", b'{"v": 1, "ts": %.3f}' % _ts(-31 * DAY), "ts_past"),
    ("j/ts-2-days-ahead", b'{"v": 1, "ts": %.3f}' % _ts(2 * DAY), "ts_future"),
    ("j/ts-1970", b'{"v": 1, "ts": 0}', "ts_past"),
    ("j/ts-negative", b'{"v": 1, "ts": -1e12}', "ts_past"),
]


@pytest.mark.parametrize(("topic", "payload", "outcome"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_payload_is_a_counted_refusal_or_a_counted_bad_reading(
        tmp_path: Path, topic: str, payload: bytes, outcome: str) -> None:
    agent = _agent(tmp_path)
    source = agent.sources[0]
    assert isinstance(source, MqttSource)
    good = b'{"v": 7.5, "ts": %.3f}' % _ts(-1)
    source.on_message("j/before", good)
    source.on_message(topic, payload)
    source.on_message("j/after", good)
    readings = list(agent.readings)
    assert [(r.tag, r.quality) for r in readings if r.tag in ("before", "after")] == [
        ("before", Quality.GOOD), ("after", Quality.GOOD)]
    if outcome == "malformed":
        assert source.status.malformed == 1 and sum(agent.intake.bad.values()) == 0
        assert len(readings) == 2
    else:
        assert source.status.malformed == 0 and dict(agent.intake.bad) == {outcome: 1}
        (bad,) = [r for r in readings if r.tag == topic.split("/")[1]]
        assert bad.quality == Quality.BAD


async def test_deep_json_over_a_real_broker_does_not_restart_the_source(tmp_path: Path,
                                                                       broker: Any) -> None:
    agent_cfg = _agent(tmp_path, broker.port).config.model_dump(mode="json")
    agent_cfg["outbox"]["flush_interval_s"] = 30  # the readings stay in view until the test ends
    async with running_agent(agent_cfg) as agent:
        source = agent.sources[0]
        await wait_for(lambda: source.status.connected, what="connected")
        ts = _ts()
        messages = [("j/a", json.dumps({"v": 1.0, "ts": ts}).encode())]
        messages += [("j/deep", b'{"v": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")] * 20
        messages += [("j/b", json.dumps({"v": 2.0, "ts": ts}).encode())]
        await publish(broker.port, messages)
        await wait_for(lambda: source.status.readings + source.status.malformed >= 22, what="all handled")
        assert source.status.malformed == 20 and source.status.readings == 2
        assert agent.health["source:s"].restarts == 0
        values = {r.tag: r.value for r in seen_readings(agent)}
        assert values == {"a": 1.0, "b": 2.0}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_parse_decimal_accepts_plain_ascii_decimals_only(text: str) -> None:
    try:
        value = parse_decimal(text)
    except ValueError:
        return
    stripped = text.strip()
    assert stripped.isascii() and "_" not in stripped
    assert math.isnan(value) or value == float(stripped)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
def test_a_reading_is_good_only_when_finite_in_range_and_timely(value: float, offset: float) -> None:
    check = ReadingCheck()
    now = 1_796_115_518.0
    r = check.check(Reading("s", "t", value, now + offset, now))
    good = (math.isfinite(value) and abs(value) <= 2**53 and math.isfinite(offset)
            and -30 * DAY <= offset <= DAY)
    assert (r.quality == Quality.GOOD) == good
    assert sum(check.bad.values()) == (0 if good else 1)
    assert r.value == value or (math.isnan(r.value) and math.isnan(value))  # nothing rewritten

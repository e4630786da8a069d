"""Log discipline under floods (one limiter, bounded memory, "N more suppressed") and journald
output that keeps the traceback of a real failure."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from agent.aio.loglimit import RepeatFilter, RepeatLimiter
from agent.config import MqttSourceConfig
from agent.ingest.sources.mqtt import MqttSource
from agent.service.logsetup import JournalFormatter
from tests.helpers.sink import Sink


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self, limiter: RepeatLimiter) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.addFilter(RepeatFilter(limiter))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())




def _capture(limiter: RepeatLimiter) -> Lines:
    handler = Lines(limiter)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def test_thousand_malformed_messages_on_thousand_topics_give_one_line_and_a_count() -> None:
    clock = FakeClock()
    limiter = RepeatLimiter(60.0, clock=clock)
    handler = _capture(limiter)
    try:
        source = MqttSource(MqttSourceConfig.model_validate({
            "type": "mqtt", "name": "s", "broker": {"host": "h"},
            "topics": [{"topic": "plant/+/t", "tags": [{"tag": "{1}", "field": "v"}]}]}), Sink(), "gw")
        for i in range(1000):
            source.on_message(f"plant/m{i}/t", b"{not json")
        flood = [line for line in handler.lines if "malformed" in line]
        assert len(flood) == 1, flood[:5]
        assert source.status.malformed == 1000 and source.malformed.count == 1000
        assert len(source.malformed.by_key) == 64  # bounded, whatever the topics
        clock.now += 61
        source.on_message("plant/late/t", b"{not json")
        last = [line for line in handler.lines if "malformed" in line][-1]
        assert "999 more like this suppressed in the last 60 s" in last
    finally:
        logging.getLogger().removeHandler(handler)


def test_memory_stays_bounded_and_a_logger_cannot_flood_with_distinct_texts() -> None:
    limiter = RepeatLimiter(60.0, max_keys=100, clock=FakeClock())
    handler = _capture(limiter)
    try:
        noisy = logging.getLogger("tests.noisy")
        for i in range(20_000):
            noisy.warning(f"unknown token {i:05d} from 10.0.0.{i % 250}")
        assert len(limiter) <= 100
        assert len([line for line in handler.lines if "unknown token" in line]) <= 20
        assert limiter.suppressed_total >= 19_980
        logging.getLogger("tests.other").critical("disk on fire")  # never held back
        assert handler.lines[-1] == "disk on fire"
    finally:
        logging.getLogger().removeHandler(handler)


def test_quiet_keys_get_a_suppressed_line_of_their_own() -> None:
    clock = FakeClock()
    limiter = RepeatLimiter(60.0, clock=clock)
    for _ in range(5):
        limiter.admit("k")
    assert limiter.expired() == []
    clock.now += 60
    assert limiter.expired() == [("k", 4)]
    assert limiter.expired() == []


def _fail() -> None:
    raise ZeroDivisionError("division by zero in the model runtime")


def test_journald_formatter_keeps_the_traceback() -> None:
    log = logging.getLogger("agent.inference.runtimes.onnx")
    record = None
    try:
        _fail()
    except ZeroDivisionError:
        record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "inference failed on %d samples",
                                (64,), sys.exc_info())
    assert record is not None
    lines = JournalFormatter().format(record).splitlines()
    assert lines[0] == "<3>agent.inference.runtimes.onnx: inference failed on 64 samples"
    assert all(line.startswith("<3>agent.inference.runtimes.onnx: ") for line in lines)
    body = "\n".join(lines[1:])
    assert "| Traceback (most recent call last):" in body
    assert "in _fail" in body and "ZeroDivisionError: division by zero in the model runtime" in body


def test_under_journald_the_agent_logs_tracebacks_and_json_carries_them_too() -> None:
    code = ("import logging; from agent.service.logsetup import setup_logging; setup_logging({js})\n"
            "try:\n    1/0\nexcept ZeroDivisionError:\n    logging.getLogger('agent.x').exception('boom')\n")
    env = {**os.environ, "JOURNAL_STREAM": "8:1234"}
    out = subprocess.run([sys.executable, "-c", code.format(js="'INFO', False")], env=env,
                         capture_output=True, text=True, timeout=60).stderr.splitlines()
    assert out[0] == "<3>agent.x: boom"
    assert any("| Traceback" in line for line in out)
    assert out[-1].startswith("<3>agent.x: | ZeroDivisionError")
    out = subprocess.run([sys.executable, "-c", code.format(js="'INFO', True")], env=env,
                         capture_output=True, text=True, timeout=60).stderr.splitlines()
    doc = json.loads(out[0])
    assert doc["msg"] == "boom" and "ZeroDivisionError" in doc["exc"]

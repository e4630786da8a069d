"""Hostile Sparkplug B traffic against the agent as host (source) and as edge node (output):
payloads crafted with pysparkplug's protobuf classes, and the floods over a real mosquitto.
Every case is a counted refusal or a counted bad reading, never a crash, a reading on the wrong
tag or a silent good reading; rebirth requests and births on request stay at a bounded rate."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

import aiomqtt
import pysparkplug as spb
import pytest
from pysparkplug._protobuf import Payload as Pb

from agent.config import SparkplugSourceConfig
from agent.config.limits import InputLimits
from agent.ingest.quality import ReadingCheck
from agent.ingest.sources.sparkplug import SparkplugSource
from agent.types import Quality, Reading
from tests.helpers.running import base_config, running_agent, wait_for
from tests.helpers.sink import Sink as ReadingSink

T0 = 1_700_000_000_000
DT = spb.DataType



class Sink(ReadingSink):
    def of(self, tag: str) -> list[Reading]:
        return [r for r in self.readings if r.tag == tag]


def source(limits: InputLimits | None = None, **extra: Any) -> tuple[SparkplugSource, Sink]:
    cfg = SparkplugSourceConfig.model_validate({
        "type": "sparkplug", "name": "spb", "group": "g", "broker": {"host": "localhost"}, **extra})
    sink = Sink()
    src = (SparkplugSource(cfg, sink, "gw") if limits is None
           else SparkplugSource(cfg, sink, "gw", limits=limits))
    return src, sink


def metric(name: str | None, alias: int | None, value: Any, dt: DT = DT.DOUBLE,
           ts: int | None = T0) -> spb.Metric:
    return spb.Metric(timestamp=ts, name=name, datatype=dt, value=value, alias=alias)


def nbirth(src: SparkplugSource, *metrics: spb.Metric, node: str = "n1", bd_seq: int = 0) -> None:
    body = (metric("bdSeq", None, bd_seq, DT.INT64), *metrics)
    src.on_message(f"spBv1.0/g/NBIRTH/{node}", spb.NBirth(T0, 0, body).encode())


def raw_data(seq: int, fill: Any, topic: str = "spBv1.0/g/NDATA/n1") -> bytes:
    """An NDATA built on the generated protobuf class, for what pysparkplug refuses to encode."""
    pb = Pb()
    pb.seq = seq
    pb.timestamp = T0
    fill(pb.metrics.add())
    return pb.SerializeToString()


def test_an_alias_of_another_device_is_not_read_as_this_devices_metric() -> None:
    src, sink = source()
    nbirth(src, metric("Temp", 1, 20.5))
    for seq, device, alias in ((1, "press-1", 11), (2, "press-2", 12)):
        src.on_message(f"spBv1.0/g/DBIRTH/n1/{device}",
                       spb.DBirth(T0, seq, (metric("Speed", alias, 100.0 + seq),)).encode())
    before = len(sink.readings)
    # DDATA of press-2 with alias 11, which press-1's birth declared: whose Speed is it?
    src.on_message("spBv1.0/g/DDATA/n1/press-2",
                   spb.DData(T0, 3, (metric(None, 11, 7.0),)).encode(include_dtypes=False))
    assert sink.of("n1.press-2.Speed")[-1].value == 102.0  # not 7.0 from someone else's alias
    assert len(sink.readings) == before
    assert src.unknown_aliases == 1 and src.rebirths_requested == 1
    # the node's own alias 1 in a device message is not the node's Temp either
    src.on_message("spBv1.0/g/DDATA/n1/press-1",
                   spb.DData(T0, 4, (metric(None, 1, 99.0),)).encode(include_dtypes=False))
    assert len(sink.readings) == before and src.unknown_aliases == 2


def test_one_alias_for_two_metrics_in_a_birth_is_a_counted_collision_not_a_guess() -> None:
    src, sink = source()
    nbirth(src, metric("Temp", 5, 20.5), metric("Pressure", 5, 3.0))
    assert src.alias_collisions == 1
    before = len(sink.readings)
    src.on_message("spBv1.0/g/NDATA/n1",
                   spb.NData(T0, 1, (metric(None, 5, 42.0),)).encode(include_dtypes=False))
    assert len(sink.readings) == before  # neither Temp nor Pressure gets 42
    assert src.unknown_aliases == 1
    # by name both still work
    src.on_message("spBv1.0/g/NDATA/n1", spb.NData(T0, 2, (metric("Pressure", None, 4.0),)).encode())
    assert sink.of("n1.Pressure")[-1].value == 4.0


def test_a_source_timestamp_of_zero_is_1970_not_the_receive_time() -> None:
    src, sink = source()
    nbirth(src, metric("Temp", 1, 20.5))

    def fill(m: Any) -> None:
        m.alias, m.datatype, m.double_value, m.timestamp = 1, DT.DOUBLE, 3.0, 0
    src.on_message("spBv1.0/g/NDATA/n1", raw_data(1, fill))
    r = sink.of("n1.Temp")[-1]
    assert r.source_ts == 0.0
    check = ReadingCheck()
    assert check.check(r).quality is Quality.BAD and check.bad["ts_past"] == 1


@pytest.mark.parametrize("stamp", [1, 2**64 - 1], ids=["far-past", "far-future"])
def test_far_timestamps_are_counted_bad_at_the_intake(stamp: int) -> None:
    src, sink = source()
    nbirth(src, metric("Temp", 1, 20.5))
    src.on_message("spBv1.0/g/NDATA/n1", spb.NData(T0, 1, (metric(None, 1, 3.0, ts=stamp),)).encode())
    check = ReadingCheck()
    assert check.check(sink.of("n1.Temp")[-1]).quality is Quality.BAD
    assert sum(check.bad.values()) == 1


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_values_are_counted_as_not_finite(value: float) -> None:
    src, sink = source()
    nbirth(src, metric("Temp", 1, 20.5))
    src.on_message("spBv1.0/g/NDATA/n1", spb.NData(T0, 1, (metric(None, 1, value),)).encode())
    check = ReadingCheck()
    r = check.check(sink.of("n1.Temp")[-1])
    assert r.quality is Quality.BAD and check.bad["not_finite"] == 1  # counted, not just bad


def test_a_non_finite_bdseq_is_no_crash() -> None:
    src, sink = source()
    nbirth(src, metric("Temp", 1, 20.5))
    death = spb.NDeath(T0, metric("bdSeq", None, math.nan, DT.DOUBLE))
    src.on_message("spBv1.0/g/NDEATH/n1", death.encode())
    src.on_message("spBv1.0/g/NBIRTH/n1", spb.NBirth(T0, 0, (
        metric("bdSeq", None, math.inf, DT.DOUBLE), metric("Temp", 1, 1.0))).encode())
    assert sink.of("n1.Temp")[-1].value == 1.0


def test_a_boolean_carried_in_an_integer_field_is_malformed() -> None:
    src, sink = source()
    nbirth(src, metric("Run", 1, True, DT.BOOLEAN))

    def fill(m: Any) -> None:  # BOOLEAN is boolean_value; 7 in int_value is not a boolean
        m.alias, m.datatype, m.int_value = 1, DT.BOOLEAN, 7
    src.on_message("spBv1.0/g/NDATA/n1", raw_data(1, fill))
    assert [r.value for r in sink.of("n1.Run")] == [1.0]
    assert src.status.malformed == 1


def test_a_payload_over_the_size_limit_is_malformed() -> None:
    src, sink = source(limits=InputLimits(payload_max_bytes=64 * 1024))
    nbirth(src, metric("Temp", 1, 20.5))
    huge = spb.NData(T0, 1, (metric("Temp", None, 1.0), metric("x" * (10 << 20), None, 2.0))).encode()
    src.on_message("spBv1.0/g/NDATA/n1", huge)
    assert src.status.malformed == 1
    assert all(len(r.tag) < 1000 for r in sink.readings)


@pytest.mark.parametrize("name", ["Te\nmp", "Temp\x00", "\x1b[31mTemp", "T" * 5000],
                         ids=["newline", "nul", "escape", "5000-chars"])
def test_metric_names_with_control_characters_or_huge_length_are_malformed(name: str) -> None:
    src, sink = source()
    nbirth(src, metric("Temp", 1, 20.5))
    src.on_message("spBv1.0/g/NDATA/n1", spb.NData(T0, 1, (metric(name, None, 1.0),
                                                             metric(None, 1, 21.5))).encode())
    assert [r.tag for r in sink.readings] == ["n1.Temp", "n1.Temp"]  # the good metric arrives
    assert src.status.malformed == 1


@pytest.mark.parametrize("topic", ["spBv1.0/g/NDATA/n\n1", "spBv1.0/g/DDATA/n1/\x1bdev",
                                   "spBv1.0/g/NBIRTH/" + "n" * 5000])
def test_ids_in_the_topic_with_control_characters_or_huge_length_are_malformed(topic: str) -> None:
    src, sink = source()
    src.on_message(topic, spb.NBirth(T0, 0, (metric("Temp", 1, 20.5),)).encode())
    assert sink.readings == [] and src.status.malformed == 1 and src.nodes == {}


@pytest.mark.parametrize("redefined", [metric("Temp", 1, "hot", DT.STRING),
                                       metric("Temp", 1, b"\x00", DT.BYTES)],
                         ids=["string", "bytes"])
def test_a_model_input_redefined_as_a_type_that_is_not_a_number_is_a_counted_bad_reading(
        redefined: spb.Metric) -> None:
    src, sink = source(metrics=[{"tag": "temp", "edge_node": "n1", "metric": "Temp"}])
    nbirth(src, metric("Temp", 1, 20.5))
    nbirth(src, redefined)  # a second birth: Temp is no longer a number
    last = sink.of("temp")[-1]
    assert last.quality is Quality.BAD and math.isnan(last.value)  # never the old 20.5 as good
    assert src.not_numeric == 1


def test_an_unsupported_datatype_of_a_model_input_is_a_counted_bad_reading() -> None:
    src, sink = source(metrics=[{"tag": "temp", "edge_node": "n1", "metric": "Temp"}])
    nbirth(src, metric("Temp", 1, 20.5))

    def fill(m: Any) -> None:  # datatype 99: no Sparkplug type
        m.name, m.datatype, m.long_value = "Temp", 99, 3
    src.on_message("spBv1.0/g/NDATA/n1", raw_data(1, fill))
    last = sink.of("temp")[-1]
    assert last.quality is Quality.BAD and src.not_numeric == 1


def test_sequence_wraps_from_255_to_0_without_a_gap() -> None:
    src, sink = source()
    nbirth(src, metric("Temp", 1, 20.5))
    for seq in [*range(1, 256), 0, 1]:
        src.on_message("spBv1.0/g/NDATA/n1", spb.NData(T0, seq, (metric(None, 1, float(seq)),)).encode())
    assert src.sequence_gaps == 0 and src.rebirths_requested == 0
    assert len(sink.of("n1.Temp")) == 258


def test_death_before_birth_and_a_death_of_another_session() -> None:
    src, sink = source()
    src.on_message("spBv1.0/g/NDEATH/n1", spb.NDeath(T0, metric("bdSeq", None, 3, DT.INT64)).encode())
    src.on_message("spBv1.0/g/DDEATH/n1/press-1", spb.DDeath(T0, 0).encode())
    assert sink.readings == []
    nbirth(src, metric("Temp", 1, 20.5), bd_seq=4)
    src.on_message("spBv1.0/g/NDEATH/n1", spb.NDeath(T0, metric("bdSeq", None, 3, DT.INT64)).encode())
    assert src.nodes["n1"].born  # bdSeq 3 is the will of an earlier session
    src.on_message("spBv1.0/g/NDEATH/n1", spb.NDeath(T0, metric("bdSeq", None, 4, DT.INT64)).encode())
    assert not src.nodes["n1"].born and sink.readings[-1].quality is Quality.STALE


def test_a_flood_of_made_up_edge_nodes_is_bounded_in_memory_and_rebirths() -> None:
    src, _ = source(max_edge_nodes=50, rebirths_per_s=5)
    for i in range(2000):
        src.on_message(f"spBv1.0/g/NDATA/node{i}", spb.NData(T0, 0, (metric("x", None, 1.0),)).encode())
    assert len(src.nodes) == 50
    assert src.refused_nodes == 1950
    assert src.rebirths_requested <= 6  # a burst of one second, not one per node


def test_births_beyond_the_metric_budget_are_refused() -> None:
    src, sink = source(max_metrics=100)
    nbirth(src, *(metric(f"m{i}", i + 1, 1.0) for i in range(60)))
    assert len(sink.readings) == 60
    src.on_message("spBv1.0/g/DBIRTH/n1/d1", spb.DBirth(T0, 1, tuple(
        metric(f"d{i}", 1000 + i, 1.0) for i in range(60))).encode())
    assert len(sink.readings) == 60 and src.status.malformed == 1  # 120 > 100: refused
    # a rebirth of the node replaces its own definitions: still within the budget
    nbirth(src, *(metric(f"m{i}", i + 1, 2.0) for i in range(60)))
    assert len(sink.readings) == 120


def test_huge_metric_counts_within_the_payload_limit_do_not_stall() -> None:
    src, sink = source(max_metrics=1_000_000)
    many = tuple(metric(None, i, float(i), ts=None) for i in range(1, 20_001))
    nbirth(src, *(metric(f"m{i}", i, 0.0) for i in range(1, 20_001)))
    started = time.perf_counter()
    src.on_message("spBv1.0/g/NDATA/n1", spb.NData(T0, 1, many).encode(include_dtypes=False))
    assert len(sink.readings) == 40_000
    assert time.perf_counter() - started < 30  # seconds, not minutes: no quadratic work


# -- over a real broker ---------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def running(task_factory: Any) -> Any:
    task = asyncio.create_task(task_factory())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_flood_of_rebirth_provoking_messages_gets_a_bounded_rate_of_requests(
        broker: Any) -> None:
    cfg = SparkplugSourceConfig.model_validate({
        "type": "sparkplug", "name": "spb", "group": "flood", "rebirths_per_s": 5,
        "broker": {"host": "127.0.0.1", "port": broker.port}})
    src = SparkplugSource(cfg, Sink(), "gw-flood")
    commands: list[str] = []

    async def count_commands(client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            commands.append(str(msg.topic))

    async with aiomqtt.Client("127.0.0.1", broker.port) as attacker, running(src.run):
        await attacker.subscribe("spBv1.0/flood/NCMD/#", qos=0)
        async with running(lambda: count_commands(attacker)):
            await wait_for(lambda: src.status.connected, 10, "source subscribed")
            started = time.monotonic()
            for i in range(400):  # data before birth from 400 node ids, and gaps from one
                await attacker.publish(f"spBv1.0/flood/NDATA/fake{i % 40}",
                                       spb.NData(T0, i % 7, (metric("x", None, 1.0),)).encode())
            await wait_for(lambda: src.rebirths_requested >= 1, 10, "rebirths requested")
            await asyncio.sleep(1.0)
            elapsed = time.monotonic() - started
    assert src.rebirths_suppressed > 0
    assert len(commands) <= 5 * elapsed + 5 + 1  # the rate plus one second of burst


async def test_a_flood_of_rebirth_commands_gets_a_bounded_rate_of_births(
        tmp_path: Any, broker: Any, trained: dict[str, Any]) -> None:
    cfg = base_config(tmp_path, [{"type": "mqtt", "name": "m",
                                  "broker": {"host": "127.0.0.1", "port": broker.port},
                                  "topics": [{"topic": "none/x", "tags": [{"tag": "t"}]}]}],
                      model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]})
    cfg["outputs"] = {"sparkplug": {"broker": {"host": "127.0.0.1", "port": broker.port},
                                    "group": "floodout", "edge_node": "victim"}}
    births: list[float] = []

    async def count_births(client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            if "/NBIRTH/" in str(msg.topic):
                births.append(time.monotonic())

    rebirth = spb.NCmd(T0, (metric("Node Control/Rebirth", None, True, DT.BOOLEAN),)).encode(
        include_dtypes=True)
    async with aiomqtt.Client("127.0.0.1", broker.port) as scada:
        await scada.subscribe("spBv1.0/floodout/+/victim", qos=0)
        async with running(lambda: count_births(scada)), running_agent(cfg) as agent:
            out = agent.sparkplug_out
            await wait_for(lambda: out is not None and out.status.connected and births, 15, "birth")
            started = time.monotonic()
            for _ in range(300):
                await scada.publish("spBv1.0/floodout/NCMD/victim", rebirth, qos=0)
            await scada.publish("spBv1.0/floodout/NCMD/victim", b"\xff" * (2 << 20), qos=0)
            await asyncio.sleep(2.0)
            elapsed = time.monotonic() - started
            assert out is not None and out.status.connected
    answered = [t for t in births if t >= started]
    assert 1 <= len(answered) <= elapsed / 1.0 + 1  # at most one birth a second on request

"""The Sparkplug B source's message handling without a broker: tag names from the templates,
the device filter, metrics that are not numbers, datatypes from the birth, bad bytes."""

from __future__ import annotations

import pysparkplug as spb

from agent.config import SparkplugSourceConfig
from agent.ingest.sources.sparkplug import SparkplugSource
from tests.helpers.sink import Sink


def source(**extra: object) -> tuple[SparkplugSource, Sink]:
    cfg = SparkplugSourceConfig.model_validate({
        "type": "sparkplug", "name": "spb", "group": "g", "broker": {"host": "localhost"}, **extra})
    sink = Sink()
    return SparkplugSource(cfg, sink, "gw"), sink


def m(name: str | None, alias: int, value: object, dt: spb.DataType) -> spb.Metric:
    return spb.Metric(timestamp=1_700_000_000_000, name=name, datatype=dt, value=value, alias=alias)


def births(src: SparkplugSource) -> None:
    node = (m("bdSeq", 0, 0, spb.DataType.INT64), m("Temp", 1, 20.5, spb.DataType.FLOAT),
            m("Recipe", 2, "PA6-GF30", spb.DataType.STRING))
    src.on_message("spBv1.0/g/NBIRTH/n1", spb.NBirth(1_700_000_000_000, 0, node).encode())
    for seq, device in ((1, "press-1"), (2, "press-2")):
        dev = (m("Speed", 10 + seq, 100 + seq, spb.DataType.INT32),)
        src.on_message(f"spBv1.0/g/DBIRTH/n1/{device}",
                       spb.DBirth(1_700_000_000_000, seq, dev).encode())


def test_templates_filters_and_datatypes_from_the_birth() -> None:
    src, sink = source(devices=["press-1"])
    births(src)
    tags = {r.tag: r.value for r in sink.readings}
    assert tags == {"n1.Temp": 20.5, "n1.press-1.Speed": 101.0}  # no string, no press-2
    assert sink.readings[0].source_ts == 1_700_000_000.0  # the metric's own time (ms)
    # data by alias without datatype: decoded with the birth's (INT32, a negative number)
    data = spb.DData(1_700_000_001_000, 3, (spb.Metric(timestamp=None, name=None, alias=11,
                                                        datatype=spb.DataType.INT32, value=-5),))
    src.on_message("spBv1.0/g/DDATA/n1/press-1", data.encode(include_dtypes=False))
    assert sink.readings[-1].tag == "n1.press-1.Speed" and sink.readings[-1].value == -5.0
    assert sink.readings[-1].source_ts == 1_700_000_001.0  # the payload's time
    assert src.sequence_gaps == 0 and src.unknown_aliases == 0


def test_other_groups_commands_and_bad_bytes() -> None:
    src, sink = source()
    births(src)
    n = len(sink.readings)
    src.on_message("spBv1.0/other/NDATA/n1", b"\x00")  # another group: not ours
    src.on_message("spBv1.0/g/NCMD/n1", b"\x00")  # a command, even a broken one
    src.on_message("spBv1.0/STATE/host", b'{"online": true}')
    assert src.status.malformed == 0 and len(sink.readings) == n
    for garbage in (b"\xff" * 7, b"\x0a\x05\x0a\x03abc\x99"):
        src.on_message("spBv1.0/g/NDATA/n1", garbage)
    assert src.status.malformed == 2 and len(sink.readings) == n

"""An OPC UA server that sends a model input as something other than a plain number: the
in-process asyncua server holds one variable per kind (strings that look like numbers, bytes,
arrays, an extension object, a date, a GUID, text, Int64 beyond 2^53, NaN, a Boolean) and the
agent's OPC UA source subscribes to all of them. Each arrives as a counted bad or malformed
reading (the intake's reason, or the source's malformed count): never a crash, never a silent
good reading, never the tag's last good value left standing."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import uuid
from typing import Any

from asyncua import Server, ua

from agent.config import OpcUaSourceConfig
from agent.demo.sim.broker import free_port
from agent.ingest.quality import ReadingCheck
from agent.ingest.sources.opcua import OpcUaSource
from agent.types import Quality, Reading
from tests.helpers.running import wait_for
from tests.helpers.sink import Sink as ReadingSink


class Sink(ReadingSink):
    def last(self, tag: str) -> Reading | None:
        return next((r for r in reversed(self.readings) if r.tag == tag), None)


# tag -> (first value, variant type, what must come of it)
HOSTILE: dict[str, tuple[Any, ua.VariantType | None, str]] = {
    "numeric_text": ("12.5", ua.VariantType.String, "malformed"),
    "arabic_digits": ("\u0661\u0662", ua.VariantType.String, "malformed"),
    "underscore_text": ("1_000", ua.VariantType.String, "malformed"),
    "nan_text": ("nan", ua.VariantType.String, "malformed"),
    "bytes_number": (b"12", ua.VariantType.ByteString, "malformed"),
    "array": ([1.0, 2.0], ua.VariantType.Double, "malformed"),
    "date": (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), ua.VariantType.DateTime, "malformed"),
    "guid": (uuid.UUID(int=5), ua.VariantType.Guid, "malformed"),
    "text": (ua.LocalizedText("hot"), ua.VariantType.LocalizedText, "malformed"),
    "extension": (ua.Argument(Name="x"), ua.VariantType.ExtensionObject, "malformed"),
    "int64_big": (2**60 + 1, ua.VariantType.Int64, "out_of_range"),
    "uint64_max": (2**64 - 1, ua.VariantType.UInt64, "out_of_range"),
    "nan": (math.nan, ua.VariantType.Double, "not_finite"),
    "inf": (-math.inf, ua.VariantType.Double, "not_finite"),
}


async def test_values_that_are_not_plain_numbers_are_counted_bad_never_good() -> None:
    port = free_port()
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/values")
    ns = await server.register_namespace("urn:values")
    folder = await server.nodes.objects.add_folder(ua.NodeId("V", ns), "V")
    nodes = {}
    for tag in [*HOSTILE, "good", "flag"]:
        nodes[tag] = await folder.add_variable(ua.NodeId(tag, ns), tag, 0.0, ua.VariantType.Double,
                                               datatype=ua.NodeId(ua.ObjectIds.BaseDataType))
    # a PLC whose variables are of BaseDataType takes any variant: asyncua's own server would
    # refuse a change of type, so its check is lifted here (what a lax server does)
    server.iserver.aspace._is_expected_variant_type = lambda *_: True  # type: ignore[method-assign]
    cfg = OpcUaSourceConfig.model_validate({
        "type": "opcua", "name": "plc", "endpoint": f"opc.tcp://127.0.0.1:{port}/values",
        "publishing_interval_ms": 50, "sampling_interval_ms": 0, "watchdog_s": 0.5,
        "nodes": [{"tag": t, "node_id": f"ns={ns};s={t}"} for t in nodes]})
    sink = Sink()
    source = OpcUaSource(cfg, sink, "gw")
    async with server:
        task = asyncio.create_task(source.run())
        try:
            # every tag is a good number first: what a bad value must not leave standing
            await wait_for(lambda: all(sink.last(t) is not None for t in nodes), 20, "first values")
            for tag, (value, vtype, _) in HOSTILE.items():
                await nodes[tag].write_value(ua.DataValue(ua.Variant(value, vtype)))
            await nodes["flag"].write_value(ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
            await wait_for(lambda: all(_changed(sink.last(t)) for t in HOSTILE)
                           and sink.last("flag").value == 1.0,  # type: ignore[union-attr]
                           20, "the hostile values")
            assert not task.done()
        finally:
            task.cancel()
    check = ReadingCheck()
    malformed = [t for t, (_, _, outcome) in HOSTILE.items() if outcome == "malformed"]
    for tag, (_, _, outcome) in HOSTILE.items():
        r = check.check(sink.last(tag))  # type: ignore[arg-type]
        assert r.quality is Quality.BAD, (tag, r)
        if outcome == "malformed":
            assert math.isnan(r.value), (tag, r)
    assert source.status.malformed >= len(malformed)
    assert check.bad["out_of_range"] == 2 and check.bad["not_finite"] == 2
    good = check.check(sink.last("good"))  # type: ignore[arg-type]
    assert good.quality is Quality.GOOD and good.value == 0.0
    flag = check.check(sink.last("flag"))  # type: ignore[arg-type]
    assert flag.quality is Quality.GOOD and flag.value == 1.0  # a Boolean is 0/1, documented


def _changed(r: Reading | None) -> bool:
    return r is not None and not (r.value == 0.0 and r.quality is Quality.GOOD)

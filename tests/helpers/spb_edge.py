"""A Sparkplug B edge node for the tests, built with pysparkplug's payload classes (the same
library the agent decodes with) and published over a real broker with aiomqtt. It answers a
rebirth request (NCMD Node Control/Rebirth) with a new NBIRTH and DBIRTH, as Sparkplug says."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pysparkplug as spb
from pysparkplug._protobuf import Payload as PbPayload

NODE_METRICS = {"Barrel/Zone1": 1, "Barrel/Zone2": 2, "Barrel/Zone3": 3, "Injection/Pressure": 4}
DEVICE_METRICS = {"Mould/Temp": 10, "Screw/Speed": 11, "Cycle/Time": 12, "Injection/Cushion": 13}


def metric(name: str | None, alias: int | None, value: Any, dtype: spb.DataType = spb.DataType.DOUBLE,
           ts: int | None = None) -> spb.Metric:
    return spb.Metric(timestamp=ts, name=name, datatype=dtype, value=value, alias=alias)


class EdgeNode:
    def __init__(self, port: int, group: str = "cell-4", node: str = "plc-4", device: str = "press-1"):
        self.port, self.group, self.node, self.device = port, group, node, device
        self.seq = 0
        self.bd_seq = 0
        self.rebirth_requests = 0
        self.values = {**dict.fromkeys(NODE_METRICS, 200.0), **dict.fromkeys(DEVICE_METRICS, 40.0)}
        self.client: aiomqtt.Client | None = None
        self._births = asyncio.Event()

    def topic(self, kind: str, device: bool = False) -> str:
        tail = f"/{self.device}" if device else ""
        return f"spBv1.0/{self.group}/{kind}/{self.node}{tail}"

    def next_seq(self) -> int:
        seq, self.seq = self.seq, (self.seq + 1) % 256
        return seq

    async def publish(self, topic: str, payload: bytes) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, qos=0)

    async def birth(self) -> None:
        now = spb.get_current_timestamp()
        self.seq = 0
        node = [metric("bdSeq", None, self.bd_seq, spb.DataType.INT64, now),
                metric("Node Control/Rebirth", None, False, spb.DataType.BOOLEAN, now)]
        node += [metric(n, a, self.values[n], ts=now) for n, a in NODE_METRICS.items()]
        await self.publish(self.topic("NBIRTH"), spb.NBirth(now, self.next_seq(), tuple(node)).encode())
        dev = [metric(n, a, self.values[n], ts=now) for n, a in DEVICE_METRICS.items()]
        await self.publish(self.topic("DBIRTH", True), spb.DBirth(now, self.next_seq(), tuple(dev)).encode())
        self._births.set()

    async def data(self, values: dict[str, float], ts: int | None = None, seq: int | None = None,
                   device: bool = False, alias_override: int | None = None,
                   quality: dict[str, int] | None = None) -> None:
        """By alias only, as a real edge node does after its birth; datatypes left out."""
        now = ts or spb.get_current_timestamp()
        aliases = DEVICE_METRICS if device else NODE_METRICS
        metrics = tuple(metric(None, alias_override or aliases[n], v, ts=now) for n, v in values.items())
        cls = spb.DData if device else spb.NData
        raw = cls(now, self.next_seq() if seq is None else seq, metrics).encode()
        if quality:  # pysparkplug's Metric has no properties: add the Quality property here
            pb = PbPayload.FromString(raw)
            for m, name in zip(pb.metrics, values, strict=True):
                if name in quality:
                    m.properties.keys.append("Quality")
                    prop = m.properties.values.add()
                    prop.type = spb.DataType.INT32
                    prop.int_value = quality[name]
            raw = pb.SerializeToString()
        await self.publish(self.topic("DDATA" if device else "NDATA", device), raw)

    async def death(self, bd_seq: int | None = None) -> None:
        m = metric("bdSeq", None, self.bd_seq if bd_seq is None else bd_seq, spb.DataType.INT64)
        await self.publish(self.topic("NDEATH"), spb.NDeath(None, m).encode())

    async def _commands(self) -> None:
        assert self.client is not None
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            cmd = spb.NCmd.decode(payload)
            if any(m.name == "Node Control/Rebirth" and m.value for m in cmd.metrics):
                self.rebirth_requests += 1
                await self.birth()


@contextlib.asynccontextmanager
async def edge_node(port: int, **kw: Any) -> AsyncIterator[EdgeNode]:
    node = EdgeNode(port, **kw)
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"sim-{node.node}") as client:
        node.client = client
        await client.subscribe(node.topic("NCMD"), qos=0)
        task = asyncio.create_task(node._commands())
        try:
            yield node
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

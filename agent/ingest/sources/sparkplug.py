"""Sparkplug B source: the agent as a (non-primary) Sparkplug host application.

Births give each edge node's metric names, aliases and datatypes; data messages are decoded
against them. Every message of an edge node carries the next sequence number (0-255, shared by
its NBIRTH, NDATA, DBIRTH, DDATA and DDEATH): a gap, a data message before any birth, or an
alias no birth declared means the agent's picture is incomplete, so it asks the edge node to
rebirth (NCMD `Node Control/Rebirth`, at most once per `rebirth_interval_s`). NDEATH (when its
bdSeq matches the birth's) and DDEATH make the tags of the node (or device) stale, so samples
that need them are invalid by reason until the next birth. A payload that is not Sparkplug
protobuf is counted and logged once a minute per topic; it never stops the source.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import aiomqtt

from agent.config import SparkplugSourceConfig
from agent.ingest import spb
from agent.ingest.mqtt_session import run_session
from agent.ingest.sources.base import RateLimitedLog, ReadingSink, SourceStatus
from agent.types import Quality, Reading

log = logging.getLogger(__name__)


@dataclass
class _Node:
    """What the births said about one edge node."""

    bd_seq: int | None = None
    seq: int | None = None  # last sequence number seen
    born: bool = False
    # alias -> (device or None, name, datatype); names -> datatype per device
    aliases: dict[int, tuple[str | None, str, int]] = field(default_factory=dict)
    datatypes: dict[str | None, dict[str, int]] = field(default_factory=dict)
    # device -> tag -> its last value (what a death leaves behind, marked stale)
    tags: dict[str | None, dict[str, float]] = field(default_factory=dict)
    last_rebirth: float = -1e9


class SparkplugSource:
    def __init__(self, config: SparkplugSourceConfig, sink: ReadingSink, client_prefix: str) -> None:
        self.config = config
        self.sink = sink
        self.status = SourceStatus(config.name, "sparkplug")
        self.malformed = RateLimitedLog(f"sparkplug {config.name}: malformed payload")
        self.nodes: dict[str, _Node] = {}
        self.sequence_gaps = 0
        self.unknown_aliases = 0
        self.rebirths_requested = 0
        self.deaths = 0
        self._identifier = f"edge-{client_prefix}-{config.name}"
        self._client: aiomqtt.Client | None = None
        self._named = {(m.edge_node, m.device, m.metric): m.tag for m in config.metrics}
        self._pending_rebirths: list[str] = []

    def subscriptions(self) -> list[tuple[str, int]]:
        group, qos = self.config.group, int(self.config.qos)
        if not self.config.edge_nodes:
            return [(f"{spb.NAMESPACE}/{group}/#", qos)]
        subs: list[tuple[str, int]] = []
        for node in self.config.edge_nodes:  # every message type, node and device level
            subs += [(f"{spb.NAMESPACE}/{group}/+/{node}", qos),
                     (f"{spb.NAMESPACE}/{group}/+/{node}/+", qos)]
        return subs

    async def run(self) -> None:
        will = None
        if self.config.host_id:
            will = aiomqtt.Will(self._state_topic(), _state(False), qos=1, retain=True)
        await run_session(self.config.broker, self._identifier, self.status, self.subscriptions(),
                          on_connected=self._serve, will=will)

    def _state_topic(self) -> str:
        return f"{spb.NAMESPACE}/STATE/{self.config.host_id}"

    async def _serve(self, client: aiomqtt.Client) -> None:
        self._client = client
        if self.config.host_id:  # subscribed first: births that answer it are not missed
            await client.publish(self._state_topic(), _state(True), qos=1, retain=True, timeout=10)
        try:
            async for message in client.messages:
                payload = message.payload
                if not isinstance(payload, bytes | bytearray):
                    continue  # not protobuf; Sparkplug payloads are always bytes on the wire
                self.on_message(str(message.topic), bytes(payload))
                await self._send_rebirths()
        finally:
            self._client = None

    # -- message handling (synchronous, testable without a broker) ------------------------------
    def on_message(self, topic: str, payload: bytes) -> None:
        t = spb.parse_topic(topic)
        if t is None or t.group != self.config.group or t.message_type in ("NCMD", "DCMD"):
            return
        if self.config.edge_nodes and t.edge_node not in self.config.edge_nodes:
            return
        node = self.nodes.setdefault(t.edge_node, _Node())
        try:
            if t.message_type == "NDEATH":
                self._death(t, node, payload)
                return
            decoded = spb.decode(payload, node.datatypes.get(t.device),
                                 {a: v[2] for a, v in node.aliases.items()})
        except spb.DecodeError as exc:
            self.status.malformed += 1
            self.malformed.report(topic, f"sparkplug {self.config.name}: malformed payload on "
                                         f"{topic}: {str(exc)[:80] or 'not a Sparkplug payload'}")
            return
        self._check_sequence(t, node, decoded.seq)
        if t.message_type == "NBIRTH":
            self._node_birth(t, node, decoded)
        elif t.message_type == "DBIRTH":
            self._device_birth(t, node, decoded)
        elif t.message_type == "DDEATH":
            self._stale(t.edge_node, node, t.device)
        elif t.message_type in ("NDATA", "DDATA"):
            if not node.born:
                self._rebirth(t.edge_node, node, "data before any birth")
                return
            self._deliver(t, node, decoded)

    def _check_sequence(self, t: spb.SpbTopic, node: _Node, seq: int | None) -> None:
        if t.message_type == "NBIRTH":
            node.seq = seq
            return
        if seq is None or node.seq is None:
            return
        expected = (node.seq + 1) % 256
        node.seq = seq
        if seq != expected:
            self.sequence_gaps += 1
            self._rebirth(t.edge_node, node, f"sequence {seq} where {expected} was due")

    def _node_birth(self, t: spb.SpbTopic, node: _Node, decoded: spb.Decoded) -> None:
        node.aliases = {a: v for a, v in node.aliases.items() if v[0] is not None}
        node.datatypes[None] = {}
        for m in decoded.metrics:
            if m.name == spb.BD_SEQ and m.value is not None:
                node.bd_seq = int(m.value)
        node.born = True
        self._learn(node, None, decoded)
        log.info("sparkplug %s: NBIRTH of %s/%s (%d metrics)", self.config.name, t.group,
                 t.edge_node, len(decoded.metrics))
        self._deliver(t, node, decoded)

    def _device_birth(self, t: spb.SpbTopic, node: _Node, decoded: spb.Decoded) -> None:
        node.aliases = {a: v for a, v in node.aliases.items() if v[0] != t.device}
        node.datatypes[t.device] = {}
        self._learn(node, t.device, decoded)
        self._deliver(t, node, decoded)

    @staticmethod
    def _learn(node: _Node, device: str | None, decoded: spb.Decoded) -> None:
        for m in decoded.metrics:
            if m.name is None:
                continue
            node.datatypes[device][m.name] = m.datatype
            if m.alias is not None:
                node.aliases[m.alias] = (device, m.name, m.datatype)

    def _death(self, t: spb.SpbTopic, node: _Node, payload: bytes) -> None:
        decoded = spb.decode(payload)
        bd_seq = next((int(m.value) for m in decoded.metrics
                       if m.name == spb.BD_SEQ and m.value is not None), None)
        if node.bd_seq is not None and bd_seq is not None and bd_seq != node.bd_seq:
            return  # the will of an earlier session, delivered late: this session lives
        self.deaths += 1
        node.born = False
        node.seq = None
        log.warning("sparkplug %s: NDEATH of %s/%s: its tags are stale until it is born again",
                    self.config.name, t.group, t.edge_node)
        for device in list(node.tags):
            self._stale(t.edge_node, node, device)

    def _stale(self, edge_node: str, node: _Node, device: str | None) -> None:
        now = time.time()
        for tag, last in node.tags.get(device, {}).items():
            # the last value, marked stale: the tag is known, only no longer current
            quality = Quality.STALE if last == last else Quality.BAD
            self.sink.offer(Reading(self.config.name, tag, last, now, now, quality))

    def _tag_for(self, edge_node: str, device: str | None, metric: str) -> str | None:
        if self.config.metrics:
            return self._named.get((edge_node, device, metric))
        if device is not None and self.config.devices and device not in self.config.devices:
            return None
        template = self.config.node_tag if device is None else self.config.device_tag
        return template.format(edge_node=edge_node, device=device or "", metric=metric)

    def _deliver(self, t: spb.SpbTopic, node: _Node, decoded: spb.Decoded) -> None:
        now = time.time()
        unknown = False
        for m in decoded.metrics:
            name = m.name
            if name is None and m.alias is not None and m.alias in node.aliases:
                name = node.aliases[m.alias][1]
            if name is None:
                self.unknown_aliases += 1
                unknown = True
                continue
            if name == spb.BD_SEQ or name.startswith("Node Control/"):
                continue
            tag = self._tag_for(t.edge_node, t.device, name)
            if tag is None:
                continue
            if not m.numeric:
                continue  # strings, datasets, templates: not a model input
            if m.value is None:
                quality = Quality.BAD  # an explicit null: the edge node has no value
            else:
                quality = (Quality.GOOD if m.quality == spb.QUALITY_GOOD else
                           Quality.STALE if m.quality == spb.QUALITY_STALE or 64 <= m.quality < 192
                           else Quality.BAD)
            stamp = m.timestamp_ms if m.timestamp_ms is not None else decoded.timestamp_ms
            source_ts = stamp / 1000.0 if stamp else now
            value = m.value if m.value is not None and quality != Quality.BAD else float("nan")
            node.tags.setdefault(t.device, {})[tag] = value
            self.status.readings += 1
            self.sink.offer(Reading(self.config.name, tag, value, source_ts, now, quality))
        if unknown:
            self._rebirth(t.edge_node, node, "an alias no birth declared")

    def _rebirth(self, edge_node: str, node: _Node, why: str) -> None:
        now = time.monotonic()
        if now - node.last_rebirth < self.config.rebirth_interval_s:
            return
        node.last_rebirth = now
        self.rebirths_requested += 1
        log.warning("sparkplug %s: %s from %s/%s: asking it to rebirth", self.config.name, why,
                    self.config.group, edge_node)
        if edge_node not in self._pending_rebirths:
            self._pending_rebirths.append(edge_node)

    async def _send_rebirths(self) -> None:
        client = self._client
        while self._pending_rebirths and client is not None:
            edge_node = self._pending_rebirths[0]
            topic = f"{spb.NAMESPACE}/{self.config.group}/NCMD/{edge_node}"
            await client.publish(topic, spb.rebirth_command(int(time.time() * 1000)), qos=0,
                                 timeout=10)
            self._pending_rebirths.pop(0)


def _state(online: bool) -> bytes:
    """Sparkplug 3.0 host application STATE payload."""
    return json.dumps({"online": online, "timestamp": int(time.time() * 1000)}).encode()

"""Sparkplug B source: the agent as a (non-primary) Sparkplug host application.

Births give each edge node's metric names, aliases and datatypes; data messages are decoded
against them. Every message of an edge node carries the next sequence number (0-255, shared by
its NBIRTH, NDATA, DBIRTH, DDATA and DDEATH): a gap, a data message before any birth, or an
alias no birth declared means the agent's picture is incomplete, so it asks the edge node to
rebirth (NCMD `Node Control/Rebirth`, at most once per `rebirth_interval_s` per node and
`rebirths_per_s` over all nodes). NDEATH (when its bdSeq matches the birth's) and DDEATH make
the tags of the node (or device) stale, so samples that need them are invalid by reason until
the next birth.

Aliases are resolved in the namespace of the message's own device (or the node), so an alias
one device declared never names another device's metric; an alias a birth gives two metrics is
a counted collision and resolves to neither. What is kept is bounded: `max_edge_nodes` nodes,
`max_metrics` definitions, payloads of `limits.payload_max_bytes`. A payload that is not
Sparkplug protobuf, a metric whose name or value is malformed, an id with control characters:
each is counted and logged through the log limiter; it never stops the source. A metric named
in `metrics` that arrives as something other than a number is a bad reading (counted in
`not_numeric`), never its last good value lingering on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import aiomqtt

from agent.config import SparkplugSourceConfig
from agent.config.limits import DEFAULT_LIMITS, InputLimits
from agent.ingest import spb
from agent.ingest.mqtt_session import publish, run_session
from agent.ingest.sources.base import RateLimitedLog, ReadingSink, SourceStatus
from agent.types import Quality, Reading

log = logging.getLogger(__name__)


@dataclass
class _Node:
    """What the births said about one edge node."""

    bd_seq: int | None = None
    seq: int | None = None  # last sequence number seen
    born: bool = False
    # per device (None: the node itself): alias -> (name, datatype), and name -> datatype
    aliases: dict[str | None, dict[int, tuple[str, int]]] = field(default_factory=dict)
    datatypes: dict[str | None, dict[str, int]] = field(default_factory=dict)
    # device -> tag -> its last value (what a death leaves behind, marked stale)
    tags: dict[str | None, dict[str, float]] = field(default_factory=dict)
    last_rebirth: float = -1e9


class SparkplugSource:
    def __init__(self, config: SparkplugSourceConfig, sink: ReadingSink, client_prefix: str,
                 limits: InputLimits = DEFAULT_LIMITS) -> None:
        self.config = config
        self.sink = sink
        self.limits = limits
        self.status = SourceStatus(config.name, "sparkplug")
        self.malformed = RateLimitedLog(f"sparkplug {config.name}: malformed payload")
        self.refused = RateLimitedLog(f"sparkplug {config.name}: refused")
        self.nodes: dict[str, _Node] = {}
        self.sequence_gaps = 0
        self.unknown_aliases = 0
        self.alias_collisions = 0
        self.not_numeric = 0
        self.refused_nodes = 0
        self.rebirths_requested = 0
        self.rebirths_suppressed = 0
        self.deaths = 0
        self._tokens = max(1.0, config.rebirths_per_s)  # rebirth requests (a token bucket)
        self._tokens_at = time.monotonic()
        self._identifier = f"edge-{client_prefix}-{config.name}"
        self._client: aiomqtt.Client | None = None
        self._named = {(m.edge_node, m.device, m.metric): m.tag for m in config.metrics}
        self._pending_rebirths: list[str] = []

    def counters(self) -> dict[str, int]:
        """What this source refused or asked for, for status.json and /metrics."""
        return {"sequence_gaps": self.sequence_gaps, "unknown_aliases": self.unknown_aliases,
                "alias_collisions": self.alias_collisions, "not_numeric": self.not_numeric,
                "refused_nodes": self.refused_nodes, "rebirths_requested": self.rebirths_requested,
                "rebirths_suppressed": self.rebirths_suppressed, "deaths": self.deaths}

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
            await publish(client, self._state_topic(), _state(True), qos=1, retain=True, timeout=10)
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
        if not all(spb.valid_name(i) for i in (t.edge_node, t.device) if i is not None):
            self._malformed(topic, f"an id in the topic has control characters or is longer than "
                                   f"{spb.MAX_NAME}")
            return
        if len(payload) > self.limits.payload_max_bytes:
            self._malformed(topic, f"{len(payload)} bytes, more than limits.payload_max_bytes "
                                   f"({self.limits.payload_max_bytes})")
            return
        node = self.nodes.get(t.edge_node)
        if node is None:
            if len(self.nodes) >= self.config.max_edge_nodes:
                self.refused_nodes += 1
                self.refused.report("nodes", f"sparkplug {self.config.name}: edge node "
                                             f"{t.edge_node[:80]!r} ignored: max_edge_nodes "
                                             f"({self.config.max_edge_nodes}) are tracked already")
                return
            node = self.nodes[t.edge_node] = _Node()
        try:
            if t.message_type == "NDEATH":
                self._death(t, node, payload)
                return
            decoded = spb.decode(payload, node.datatypes.get(t.device), node.aliases.get(t.device))
        except spb.DecodeError as exc:
            self._malformed(topic, str(exc)[:80] or "not a Sparkplug payload")
            return
        if decoded.refused:
            self._malformed(topic, f"{len(decoded.refused)} metric(s) left out: {decoded.refused[0]}")
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

    def _malformed(self, topic: str, why: str) -> None:
        self.status.malformed += 1
        # no control character of a hostile topic reaches the log
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in topic[:200])
        self.malformed.report(shown, f"sparkplug {self.config.name}: malformed payload on {shown}: {why}")

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
        if not self._learn(t, node, None, decoded):
            return
        for m in decoded.metrics:
            if m.name == spb.BD_SEQ:
                node.bd_seq = spb.whole(m.value)
        node.born = True
        log.info("sparkplug %s: NBIRTH of %s/%s (%d metrics)", self.config.name, t.group,
                 t.edge_node, len(decoded.metrics))
        self._deliver(t, node, decoded)

    def _device_birth(self, t: spb.SpbTopic, node: _Node, decoded: spb.Decoded) -> None:
        if self._learn(t, node, t.device, decoded):
            self._deliver(t, node, decoded)

    def _learn(self, t: spb.SpbTopic, node: _Node, device: str | None, decoded: spb.Decoded) -> bool:
        """Take a birth's names and aliases for the node or one device; False when the birth is
        refused (it would go over max_metrics)."""
        names: dict[str, int] = {}
        aliases: dict[int, tuple[str, int]] = {}
        clashes: set[int] = set()
        for m in decoded.metrics:
            if m.name is None:
                continue
            names[m.name] = m.datatype
            if m.alias is not None:
                if m.alias in aliases and aliases[m.alias][0] != m.name:
                    clashes.add(m.alias)  # which of the two would data by this alias mean?
                aliases[m.alias] = (m.name, m.datatype)
        kept = sum(len(d) for n in self.nodes.values() for d in n.datatypes.values())
        if kept - len(node.datatypes.get(device, {})) + len(names) > self.config.max_metrics:
            self._malformed(f"{spb.NAMESPACE}/{t.group}/{t.message_type}/{t.edge_node}",
                            f"birth of {len(names)} metrics refused: more than max_metrics "
                            f"({self.config.max_metrics}) would be kept")
            return False
        if clashes:
            self.alias_collisions += len(clashes)
            self.refused.report("aliases", f"sparkplug {self.config.name}: a birth of "
                                           f"{t.edge_node[:80]} gives alias(es) "
                                           f"{sorted(clashes)[:5]} to two metrics; data by them is "
                                           "read as an unknown alias")
            for alias in clashes:
                del aliases[alias]
        node.datatypes[device] = names
        node.aliases[device] = aliases
        return True

    def _death(self, t: spb.SpbTopic, node: _Node, payload: bytes) -> None:
        decoded = spb.decode(payload)
        bd_seq = next((spb.whole(m.value) for m in decoded.metrics if m.name == spb.BD_SEQ), None)
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
        aliases = node.aliases.get(t.device, {})
        for m in decoded.metrics:
            name = m.name
            if name is None and m.alias is not None and m.alias in aliases:
                name = aliases[m.alias][0]
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
                if not self.config.metrics:
                    continue  # strings, datasets, templates: not a model input
                # named as a model input, but not a number (a birth redefined it, or a datatype
                # the agent cannot read): the tag is bad now, not its last number lingering on
                self.not_numeric += 1
                self.refused.report("not-numeric", f"sparkplug {self.config.name}: metric "
                                                   f"{name[:80]} ({tag}) is datatype {m.datatype}, "
                                                   "not a number; a bad reading")
                node.tags.setdefault(t.device, {})[tag] = float("nan")
                self.sink.offer(Reading(self.config.name, tag, float("nan"), now, now, Quality.BAD))
                continue
            if m.value is None:
                quality = Quality.BAD  # an explicit null: the edge node has no value
            else:
                quality = (Quality.GOOD if m.quality == spb.QUALITY_GOOD else
                           Quality.STALE if m.quality == spb.QUALITY_STALE or 64 <= m.quality < 192
                           else Quality.BAD)
            stamp = m.timestamp_ms if m.timestamp_ms is not None else decoded.timestamp_ms
            source_ts = stamp / 1000.0 if stamp is not None else now  # 0 is 1970, not "now"
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
        rate = self.config.rebirths_per_s
        self._tokens = min(max(1.0, rate), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens < 1.0:
            self.rebirths_suppressed += 1  # asked again with the node's next message
            return
        self._tokens -= 1.0
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
            await publish(client, topic, spb.rebirth_command(int(time.time() * 1000)), qos=0,
                          timeout=10)
            self._pending_rebirths.pop(0)


def _state(online: bool) -> bytes:
    """Sparkplug 3.0 host application STATE payload."""
    return json.dumps({"online": online, "timestamp": int(time.time() * 1000)}).encode()

"""Config models of the protocol sources (one class per plug-in, joined by `type`)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from agent.config.common import BackoffConfig, Secret, Strict, TlsConfig


class OpcUaSecurity(Strict):
    mode: Literal["None", "Sign", "SignAndEncrypt"] = Field(
        "None", description="OPC UA message security mode."
    )
    policy: Literal["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = Field(
        "Basic256Sha256", description="Security policy used when mode is not None."
    )
    certificate: Path | None = Field(None, description=(
        "Client application certificate (DER/PEM); `edge-agent opcua certs create` makes it."))
    private_key: Path | None = Field(None, description="Private key of the client certificate.")
    server_certificate: Path | None = Field(None, description=(
        "Pinned server certificate: the session is refused unless the server presents exactly it."))
    trust_dir: Path | None = Field(None, description=(
        "Directory of trusted server certificates or the CAs that sign them (.der/.pem): the "
        "server's certificate must be in it or issued by one in it."))
    host_names: list[str] = Field(default_factory=list, description=(
        "Host names and IP addresses put into the client certificate as SANs by `opcua certs "
        "create` (default: this machine's host name)."))
    validity_days: int = Field(730, ge=1, le=7300, description="Validity of a created certificate.")
    key_size: Literal[2048, 3072, 4096] = Field(2048, description="RSA key size of a created key.")

    @model_validator(mode="after")
    def _keys_when_secure(self) -> OpcUaSecurity:
        if self.mode != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError(f"mode {self.mode} needs both 'certificate' and 'private_key' files")
        if self.server_certificate is not None and self.trust_dir is not None:
            raise ValueError("give either 'server_certificate' (a pin) or 'trust_dir', not both")
        return self


class MonitoredQueue(Strict):
    size: int = Field(100, ge=1, le=100_000, description=(
        "Queue size of the monitored items of event tags (trigger, sample id, QC verdicts): every "
        "change between two publishes is delivered, not only the newest."))
    discard_oldest: bool = Field(True, description=(
        "When the queue overflows, drop the oldest change (True) or the newest (False)."))


_NODE_ID = r"^(ns=\d+;)?(i=\d+|s=(?s:.+)|g=[0-9a-fA-F-]{36}|b=(?s:.+))$"


def node_id_problem(node_id: str) -> str | None:
    """Why a node id in text form cannot be sent to a server, or None. Beyond the pattern: the
    namespace index is a UInt16 and a numeric id a UInt32 on the wire (asyncua fails with a
    struct error deep in a request otherwise), and a GUID must be one."""
    match = re.fullmatch(_NODE_ID, node_id, re.DOTALL)
    if match is None:
        return "not an OPC UA node id; use 'ns=2;i=1001' or 'ns=3;s=Machine.Tag'"
    ns = int(match.group(1)[3:-1]) if match.group(1) else 0
    if ns > 0xFFFF:
        return f"namespace index {ns} is more than 65535"
    kind, value = match.group(2)[0], match.group(2)[2:]
    if kind == "i" and int(value) > 0xFFFF_FFFF:
        return f"numeric id {value[:20]} is more than 4294967295"
    if kind == "g":
        try:
            uuid.UUID(value)
        except ValueError:
            return f"{value} is not a GUID"
    return None


def node_key(node_id: str) -> str:
    """One spelling per node: 'i=85' and 'ns=0;i=85' are the same node."""
    return node_id[5:] if node_id.startswith("ns=0;") else node_id


class OpcUaNode(Strict):
    tag: str = Field(min_length=1, description="Tag name used by features and the model bundle.")
    node_id: str = Field(
        pattern=_NODE_ID,
        description="OPC UA node id, numeric or string form: 'ns=2;i=1001' or 'ns=3;s=\"DB1\".\"T\"'.",
    )
    max_age_s: float | None = Field(None, gt=0, description="Staleness limit for this tag.")
    queue_size: int | None = Field(None, ge=1, le=100_000, description=(
        "Monitored-item queue of this node; default: `event_queue.size` for the trigger, "
        "sample-id and label tags, the server's default (1: newest value only) for the others."))

    @field_validator("node_id")
    @classmethod
    def _on_the_wire(cls, value: str) -> str:
        problem = node_id_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def _opcua_reconnect() -> BackoffConfig:
    # capped at 5 s: with 60 s a PLC restart left the agent waiting 10-18 s after the server came back
    return BackoffConfig(initial_s=0.5, max_s=5.0)


class OpcUaSourceConfig(Strict):
    type: Literal["opcua"] = Field(description="Source plug-in: OPC UA client (asyncua).")
    name: str = Field(min_length=1, description="Unique source name.")
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="Server URL, opc.tcp://host:port/path.")
    security: OpcUaSecurity = Field(default_factory=OpcUaSecurity, description="Message security.")
    application_uri: str | None = Field(None, min_length=1, description=(
        "This client's ApplicationUri, sent in CreateSession and written into the certificate as a "
        "URI SAN (they must match or the server answers BadCertificateUriInvalid); default "
        "urn:factory-edge-agent:<gateway_id>."))
    product_uri: str = Field("urn:factory-edge-agent", min_length=1,
                             description="This client's ProductUri.")
    username: str | None = Field(None, description="User name for user/password identity.")
    password: Secret | None = Field(None, description="Password, or {file: PATH}.")
    publishing_interval_ms: float = Field(500, gt=0, description="Subscription publishing interval.")
    sampling_interval_ms: float = Field(100, ge=0, description="Monitored-item sampling interval.")
    max_items_per_subscription: int = Field(
        1000, ge=1, description="Split monitored items across subscriptions above this many."
    )
    timeout_s: float = Field(5.0, gt=0, description="Timeout of each request to the server.")
    watchdog_s: float = Field(5.0, gt=0, description="Connection check period.")
    reconnect: BackoffConfig = Field(default_factory=_opcua_reconnect, description=(
        "Delays between session attempts while the server answers but refuses or fails."))
    probe_interval_s: float = Field(1.0, ge=0.2, le=60, description=(
        "While the server's port is closed, a TCP probe this often (not a session attempt): "
        "data flows again about a second after the PLC is back, without hammering it."))
    event_queue: MonitoredQueue = Field(default_factory=MonitoredQueue, description=(
        "Monitored-item queue of the trigger, sample-id and label tags."))
    nodes: list[OpcUaNode] = Field(min_length=1, description="Nodes to subscribe to.")

    @model_validator(mode="after")
    def _each_once(self) -> OpcUaSourceConfig:
        # a node listed twice would leave one of its tags without values (one monitored item
        # per node), a tag listed twice would mix two signals
        for what, keys in (("node_id", [node_key(n.node_id) for n in self.nodes]),
                           ("tag", [n.tag for n in self.nodes])):
            seen: set[str] = set()
            for key in keys:
                if key in seen:
                    raise ValueError(f"nodes: {what} {key[:80]!r} is listed more than once")
                seen.add(key)
        return self

    def max_ages(self) -> dict[str, float | None]:
        """Tag name -> its own staleness limit (None: the features default)."""
        return {n.tag: n.max_age_s for n in self.nodes}

    def uri_for(self, gateway_id: str) -> str:
        """The ApplicationUri this source sends (and its certificate must hold)."""
        return self.application_uri or f"urn:factory-edge-agent:{gateway_id}"


class MqttBroker(Strict):
    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    username: str | None = Field(None, description="User name.")
    password: Secret | None = Field(None, description="Password, or {file: PATH}.")
    client_id: str | None = Field(None, description="Client id; generated when empty.")
    keepalive_s: int = Field(30, ge=5, description="MQTT keep-alive in seconds.")
    tls: TlsConfig | None = Field(None, description="Enable TLS with these settings.")
    reconnect: BackoffConfig = Field(default_factory=BackoffConfig, description="Retry delays.")


class MqttTag(Strict):
    tag: str = Field(
        min_length=1,
        description="Tag name; '{1}', '{2}'... are replaced by the levels a wildcard matched.",
    )
    field: str | None = Field(
        None, description="Dotted path into a JSON payload ('data.temp'); empty for a plain number."
    )
    timestamp_field: str | None = Field(
        None, description="Dotted path of the source timestamp (epoch s/ms or ISO 8601)."
    )
    max_age_s: float | None = Field(None, gt=0, description="Staleness limit for this tag.")


class MqttTopic(Strict):
    topic: str = Field(min_length=1, description="Topic filter; '+' and '#' wildcards allowed.")
    tags: list[MqttTag] = Field(min_length=1, description="Tags read from each message.")

    @model_validator(mode="after")
    def _valid_filter(self) -> MqttTopic:
        levels = self.topic.split("/")
        for i, level in enumerate(levels):
            if "#" in level and (level != "#" or i != len(levels) - 1):
                raise ValueError("'#' must be a whole level and the last one")
            if "+" in level and level != "+":
                raise ValueError("'+' must be a whole level")
        return self


class MqttSourceConfig(Strict):
    type: Literal["mqtt"] = Field(description="Source plug-in: MQTT subscriber (aiomqtt).")
    name: str = Field(min_length=1, description="Unique source name.")
    broker: MqttBroker = Field(description="Broker connection.")
    qos: Literal[0, 1, 2] = Field(1, description="Subscription QoS.")
    topics: list[MqttTopic] = Field(min_length=1, description="Topic filters and their tags.")

    def max_ages(self) -> dict[str, float | None]:
        """Tag name (templates as written) -> its own staleness limit."""
        return {t.tag: t.max_age_s for topic in self.topics for t in topic.tags}


_SPB_ID = r"^[^/+#]+$"  # a Sparkplug id is one topic level


class SparkplugMetric(Strict):
    tag: str = Field(min_length=1, description="Tag name used by features and the model bundle.")
    edge_node: str = Field(pattern=_SPB_ID, description="Edge node id that publishes the metric.")
    device: str | None = Field(None, pattern=_SPB_ID, description=(
        "Device id (DBIRTH/DDATA); empty for a metric of the edge node itself (NBIRTH/NDATA)."))
    metric: str = Field(min_length=1, description="Metric name as the BIRTH declares it ('Press/Temp').")
    max_age_s: float | None = Field(None, gt=0, description="Staleness limit for this tag.")


class SparkplugSourceConfig(Strict):
    type: Literal["sparkplug"] = Field(description="Source plug-in: Sparkplug B host (protobuf over MQTT).")
    name: str = Field(min_length=1, description="Unique source name.")
    broker: MqttBroker = Field(description="Broker the edge nodes publish to.")
    group: str = Field(pattern=_SPB_ID, description="Sparkplug group id (spBv1.0/<group>/...).")
    edge_nodes: list[str] = Field(default_factory=list, description=(
        "Edge node ids to read; empty: every edge node of the group."))
    devices: list[str] = Field(default_factory=list, description=(
        "Device ids whose metrics become readings; empty: every device (node metrics always)."))
    metrics: list[SparkplugMetric] = Field(default_factory=list, description=(
        "Metrics with tag names of their own; empty: every metric, named by the templates."))
    node_tag: str = Field("{edge_node}.{metric}", description=(
        "Tag name of a node metric when `metrics` is empty: {edge_node}, {metric}."))
    device_tag: str = Field("{edge_node}.{device}.{metric}", description=(
        "Tag name of a device metric when `metrics` is empty: {edge_node}, {device}, {metric}."))
    qos: Literal[0, 1] = Field(0, description="Subscription QoS (Sparkplug publishes data at QoS 0).")
    rebirth_interval_s: float = Field(5.0, gt=0, description=(
        "At most one rebirth request (NCMD Node Control/Rebirth) per edge node this often."))
    rebirths_per_s: float = Field(10.0, gt=0, le=1000, description=(
        "At most this many rebirth requests per second over all edge nodes (a burst of one "
        "second's worth): a flood of messages from made-up or broken nodes cannot make the agent "
        "flood the broker with commands."))
    max_edge_nodes: int = Field(1000, ge=1, le=100_000, description=(
        "Edge nodes tracked at most; messages of further node ids are counted and ignored."))
    max_metrics: int = Field(100_000, ge=1, le=10_000_000, description=(
        "Metric definitions (names and aliases from births) kept at most over all edge nodes and "
        "devices; a birth that would exceed it is refused and counted as malformed."))
    host_id: str | None = Field(None, pattern=_SPB_ID, description=(
        "Announce the agent as this Sparkplug host application (retained spBv1.0/STATE/<id>, "
        "online/offline by will), for edge nodes that publish only while their primary host "
        "is online; empty: a silent host."))

    @model_validator(mode="after")
    def _filters(self) -> SparkplugSourceConfig:
        for ids, what in ((self.edge_nodes, "edge_nodes"), (self.devices, "devices")):
            bad = [i for i in ids if not i or any(c in i for c in "/+#")]
            if bad:
                raise ValueError(f"{what}: {bad[0]!r} is not a Sparkplug id (one topic level)")
        for m in self.metrics:
            if self.edge_nodes and m.edge_node not in self.edge_nodes:
                raise ValueError(f"metric {m.tag}: edge node {m.edge_node!r} is not in edge_nodes")
        return self

    def max_ages(self) -> dict[str, float | None]:
        """The tags named in `metrics` (templated names are known only after the births)."""
        return {m.tag: m.max_age_s for m in self.metrics}


SourceConfig = Annotated[OpcUaSourceConfig | MqttSourceConfig | SparkplugSourceConfig,
                         Field(discriminator="type")]

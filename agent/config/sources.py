"""Config models of the protocol sources (one class per plug-in, joined by `type`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from agent.config.common import BackoffConfig, Secret, Strict, TlsConfig


class OpcUaSecurity(Strict):
    mode: Literal["None", "Sign", "SignAndEncrypt"] = Field(
        "None", description="OPC UA message security mode."
    )
    policy: Literal["Basic256Sha256"] = Field(
        "Basic256Sha256", description="Security policy used when mode is not None."
    )
    certificate: Path | None = Field(None, description="Client application certificate (DER/PEM).")
    private_key: Path | None = Field(None, description="Private key of the client certificate.")
    server_certificate: Path | None = Field(None, description="Pinned server certificate.")

    @model_validator(mode="after")
    def _keys_when_secure(self) -> OpcUaSecurity:
        if self.mode != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError(f"mode {self.mode} needs both 'certificate' and 'private_key' files")
        return self


_NODE_ID = r"^(ns=\d+;)?(i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=.+)$"


class OpcUaNode(Strict):
    tag: str = Field(min_length=1, description="Tag name used by features and the model bundle.")
    node_id: str = Field(
        pattern=_NODE_ID,
        description="OPC UA node id, numeric or string form: 'ns=2;i=1001' or 'ns=3;s=\"DB1\".\"T\"'.",
    )
    max_age_s: float | None = Field(None, gt=0, description="Staleness limit for this tag.")


class OpcUaSourceConfig(Strict):
    type: Literal["opcua"] = Field(description="Source plug-in: OPC UA client (asyncua).")
    name: str = Field(min_length=1, description="Unique source name.")
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="Server URL, opc.tcp://host:port/path.")
    security: OpcUaSecurity = Field(default_factory=OpcUaSecurity, description="Message security.")
    username: str | None = Field(None, description="User name for user/password identity.")
    password: Secret | None = Field(None, description="Password, or {file: PATH}.")
    publishing_interval_ms: float = Field(500, gt=0, description="Subscription publishing interval.")
    sampling_interval_ms: float = Field(100, ge=0, description="Monitored-item sampling interval.")
    max_items_per_subscription: int = Field(
        1000, ge=1, description="Split monitored items across subscriptions above this many."
    )
    timeout_s: float = Field(5.0, gt=0, description="Timeout of each request to the server.")
    watchdog_s: float = Field(5.0, gt=0, description="Connection check period.")
    reconnect: BackoffConfig = Field(default_factory=BackoffConfig, description="Retry delays.")
    nodes: list[OpcUaNode] = Field(min_length=1, description="Nodes to subscribe to.")


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


SourceConfig = Annotated[OpcUaSourceConfig | MqttSourceConfig, Field(discriminator="type")]

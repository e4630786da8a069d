"""Config models of where predictions, alarms and labels go and come from, and of monitoring."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from agent.config.common import Strict
from agent.config.sources import MqttBroker


class MqttOutputConfig(Strict):
    broker: MqttBroker = Field(description="Broker that receives predictions.")
    topic: str = Field(
        "edge/{gateway_id}/{model}/predictions",
        description="Topic template: {gateway_id}, {model}, {version}.",
    )
    qos: Literal[0, 1, 2] = Field(1, description="Publish QoS.")
    queue_size: int = Field(10000, ge=1, description="Messages kept while the broker is down.")


class OpcUaWritebackConfig(Strict):
    source: str = Field(description="Name of the OPC UA source whose session writes.")
    nodes: dict[str, str] = Field(description="Output name ('label', 'score') -> node id.")


class SparkplugOutputConfig(Strict):
    broker: MqttBroker = Field(description="Broker the SCADA host reads.")
    group: str = Field(pattern=r"^[^/+#]+$", description="Sparkplug group id of this edge node.")
    edge_node: str | None = Field(None, pattern=r"^[^/+#]+$", description=(
        "Edge node id; default: the gateway_id."))
    min_interval_s: float = Field(0.0, ge=0, description=(
        "Publish at most one NDATA per model this often (0: one per inference batch)."))
    rebirth_min_interval_s: float = Field(1.0, ge=0, le=3600, description=(
        "Answer rebirth requests (NCMD Node Control/Rebirth) with at most one NBIRTH this often; "
        "requests in between are answered together by the next birth."))


class OutputsConfig(Strict):
    mqtt: MqttOutputConfig | None = Field(None, description="Publish predictions over MQTT.")
    opcua_writeback: OpcUaWritebackConfig | None = Field(None, description="Write to the PLC.")
    sparkplug: SparkplugOutputConfig | None = Field(None, description=(
        "Publish predictions and model health as a Sparkplug B edge node (NBIRTH/NDATA/NDEATH)."))


class MqttLabelsConfig(Strict):
    type: Literal["mqtt"] = Field(description="Labels arrive as MQTT messages (a QC station).")
    broker: MqttBroker = Field(description="Broker of the QC station.")
    topic: str = Field(min_length=1, description="Topic filter of label messages.")
    sample_id_field: str = Field("serial", description="JSON path of the sample id.")
    label_field: str = Field("result", description="JSON path of the label value.")


class OpcUaLabelsConfig(Strict):
    type: Literal["opcua"] = Field(description="Labels arrive as an OPC UA tag (a QC verdict).")
    tag: str = Field(min_length=1, description="Tag (of an OPC UA source) holding the label.")
    sample_id_tag: str | None = Field(
        None, description="Tag holding the part serial the verdict is for. The QC station writes "
                          "the verdict, then the serial: a new serial is a new label (two equal "
                          "verdicts in a row would send no change). Empty: each change of `tag` "
                          "is a label, matched by time (monitoring.label_match: time_offset).")
    values: dict[str, str] = Field(
        default_factory=dict, description="Tag value -> class, e.g. {'0': 'NOK', '1': 'OK'}.")


class NoLabelsConfig(Strict):
    type: Literal["none"] = Field(description=(
        "This model gets no labels, whatever the top-level `labels:` says (a model whose ground "
        "truth comes from elsewhere, or none at all): no label join, no accuracy figures."))


LabelsConfig = Annotated[MqttLabelsConfig | OpcUaLabelsConfig | NoLabelsConfig,
                         Field(discriminator="type")]


class MonitoringConfig(Strict):
    enabled: bool = Field(True, description="Run the drift and performance detectors.")
    snapshot_interval_s: float = Field(60.0, gt=0, description="How often detector state is saved.")
    label_match: Literal["sample_id", "time_offset"] = Field(
        "sample_id", description="Join labels by sample id (part serial) or by time offset.")
    label_time_offset_s: float = Field(0.0, ge=0, description="Label arrives this long after its part.")
    label_tolerance_s: float = Field(1.0, gt=0, description="Time-offset matching tolerance.")
    label_ttl_s: float = Field(24 * 3600.0, gt=0, description="How long a prediction waits for its label.")
    max_pending_labels: int = Field(200_000, ge=100, description="Bound of the pending-label table.")
    alarm_topic: str = Field("edge/{gateway_id}/{model}/alarms",
                             description="MQTT topic of alarm events (on outputs.mqtt's broker).")
    max_notifications_per_10min: int = Field(
        10, ge=1, le=1000, description="Flood guard: alarm notifications sent per 10 minutes and "
        "model at most; the rest are held back, recorded and counted.")

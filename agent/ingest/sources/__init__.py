"""Protocol sources as plug-ins: one file (or package) per protocol plus one line in
``build_source``."""

from __future__ import annotations

from agent.config import AgentConfig, OpcUaLabelsConfig, SourceConfig
from agent.ingest.sources.base import ReadingSink, Source


def event_tags(agent: AgentConfig) -> frozenset[str]:
    """Tags whose every change matters (a part counter, a serial, a QC verdict), not only the
    newest value: sources that can queue changes (OPC UA monitored items) do so for these."""
    tags: set[str | None] = set()
    for entry in agent.models:  # every model's trigger and label tags
        features, labels = agent.features_of(entry), agent.labels_of(entry)
        tags |= {features.trigger_tag, features.sample_id_tag}
        if isinstance(labels, OpcUaLabelsConfig):
            tags |= {labels.tag, labels.sample_id_tag}
    return frozenset(t for t in tags if t)


def build_source(config: SourceConfig, agent: AgentConfig, sink: ReadingSink) -> Source:
    if config.type == "opcua":
        from agent.ingest.sources.opcua import OpcUaSource

        return OpcUaSource(config, sink, agent.gateway_id, event_tags(agent))
    if config.type == "sparkplug":
        from agent.ingest.sources.sparkplug import SparkplugSource

        return SparkplugSource(config, sink, client_prefix=agent.gateway_id, limits=agent.limits)
    from agent.ingest.sources.mqtt import MqttSource

    return MqttSource(config, sink, client_prefix=agent.gateway_id, limits=agent.limits)

"""Protocol sources as plug-ins: one file per protocol plus one line in ``build_source``."""

from __future__ import annotations

from agent.config import AgentConfig, SourceConfig
from agent.ingest.sources.base import ReadingSink, Source


def build_source(config: SourceConfig, agent: AgentConfig, sink: ReadingSink) -> Source:
    if config.type == "opcua":
        from agent.ingest.sources.opcua import OpcUaSource

        return OpcUaSource(config, sink)
    from agent.ingest.sources.mqtt import MqttSource

    return MqttSource(config, sink, client_prefix=agent.gateway_id, limits=agent.limits)
